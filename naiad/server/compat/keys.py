"""Whose secret signs a request: the admin pair, derived from the admin token (so it is
as safe as the token and never stored twice), or a pair issued with `naiad keys create`."""

import base64
import hashlib
import hmac
import time

from sqlalchemy.orm import Session, sessionmaker

from naiad.store import access_keys

CACHE_S = 5.0  # a revoked key stops working within this long


def admin_pair(token: str) -> tuple[str, str]:
    """(access key id, secret) of the admin: the same for the same token, on every server."""

    def derive(label: bytes) -> bytes:
        return hmac.new(token.encode(), label, hashlib.sha256).digest()

    key_id = "NA" + base64.b32encode(derive(b"naiad-aws-access-key-id")).decode()[:18]
    secret = base64.b64encode(derive(b"naiad-aws-secret-access-key")).decode()[:40]
    return key_id, secret


class KeyBook:
    """Secrets by access key id, read from the store at most every few seconds per key."""

    def __init__(self, sessions: sessionmaker[Session], token: str) -> None:
        self.sessions = sessions
        self.admin = admin_pair(token)
        self._cache: dict[str, tuple[float, str | None]] = {}
        self._touched: dict[str, float] = {}

    def secret(self, access_key: str) -> str | None:
        """The key's secret, or None when Naiad never issued it (or it was revoked)."""
        if access_key == self.admin[0]:
            return self.admin[1]
        now = time.monotonic()
        cached = self._cache.get(access_key)
        if cached is not None and now - cached[0] < CACHE_S:
            return cached[1]
        with self.sessions() as session:
            row = access_keys.find(session, access_key)
            secret = row.secret if row is not None else None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[access_key] = (now, secret)
        return secret

    def used(self, access_key: str) -> None:
        """Record that a request signed with ``access_key`` was verified (at most once a
        minute per key, so signing every request writes next to nothing)."""
        now = time.monotonic()
        if access_key == self.admin[0] or now - self._touched.get(access_key, -60.0) < 60:
            return
        self._touched[access_key] = now
        with self.sessions() as session, session.begin():
            row = access_keys.find(session, access_key)
            if row is not None:
                access_keys.touch(session, row)
