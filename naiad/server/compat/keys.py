"""Whose secret signs a request: the admin pair, derived from the admin token (so it is
as safe as the token and never stored twice), or a key issued with `naiad keys create`
(a user's, whose secret is derived from its id, ``core.api_keys``)."""

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from naiad.core import api_keys
from naiad.core.principals import ADMIN_PRINCIPAL, Principal
from naiad.store import access_keys
from naiad.store.tables import utcnow


def admin_pair(token: str) -> tuple[str, str]:
    """(access key id, secret) of the admin: the same for the same token, on every server."""

    def derive(label: bytes) -> bytes:
        return hmac.new(token.encode(), label, hashlib.sha256).digest()

    key_id = "NA" + base64.b32encode(derive(b"naiad-aws-access-key-id")).decode()[:18]
    secret = base64.b64encode(derive(b"naiad-aws-secret-access-key")).decode()[:40]
    return key_id, secret


@dataclass(frozen=True)
class Signer:
    secret: str
    principal: Principal


class KeyBook:
    """Signers by access key id, read from the store on each request, so that a revoked or
    expired key, or a disabled user's, is refused at once."""

    def __init__(self, sessions: sessionmaker[Session], token: str) -> None:
        self.sessions = sessions
        self.admin = admin_pair(token)
        self.derive = api_keys.signing_key(token)
        self._touched: dict[str, float] = {}

    def signer(self, access_key: str) -> Signer | None:
        """The key's secret and whom it acts for; None when Naiad never issued it, or it
        no longer works."""
        if access_key == self.admin[0]:
            return Signer(self.admin[1], ADMIN_PRINCIPAL)
        with self.sessions() as session:
            row = access_keys.find(session, access_key)
            if row is None or row.kind != "key":
                return None
            principal = access_keys.principal(session, row, utcnow())
            if principal is None:
                return None
            return Signer(access_keys.secret(row, self.derive), principal)

    def used(self, access_key: str) -> None:
        """Record that a request signed with ``access_key`` was verified (at most once a
        minute per key, so signing every request writes next to nothing)."""
        now = time.monotonic()
        if access_key == self.admin[0] or now - self._touched.get(access_key, -60.0) < 60:
            return
        if len(self._touched) > 10_000:
            self._touched.clear()
        self._touched[access_key] = now
        with self.sessions() as session, session.begin():
            row = access_keys.find(session, access_key)
            if row is not None:
                access_keys.touch(session, row)
