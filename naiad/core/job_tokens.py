"""A job's own token: what its processes send instead of the admin token.

It names the job and its run, and says until when it is valid, signed with a key
derived from the admin token (so it needs no table, and changing the admin token voids
every job token). The server lets it read, write its own run, and nothing else, and
refuses it once its job has ended (``server.deps``).

Format: ``nj1.<payload>.<signature>``, both base64url. The payload is JSON:
``{"j": job, "r": run_id, "e": expires_at}``.
"""

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass

PREFIX = "nj1."
_CONTEXT = b"naiad job tokens v1"


@dataclass(frozen=True)
class JobClaims:
    job: str
    run_id: str
    expires_at: int


def signing_key(admin_token: str) -> bytes:
    return hmac.new(admin_token.encode(), _CONTEXT, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def mint(key: bytes, job: str, run_id: str, expires_at: int) -> str:
    payload = _b64(json.dumps({"j": job, "r": run_id, "e": expires_at}).encode())
    signature = hmac.new(key, payload.encode(), hashlib.sha256).digest()
    return f"{PREFIX}{payload}.{_b64(signature)}"


def is_job_token(token: str | None) -> bool:
    return token is not None and token.startswith(PREFIX)


def read(key: bytes, token: str, now: float) -> JobClaims | None:
    """The claims of a genuine, unexpired job token; None for anything else."""
    if not token.startswith(PREFIX):
        return None
    payload, _, signature = token[len(PREFIX) :].partition(".")
    expected = _b64(hmac.new(key, payload.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        return None
    try:
        data = json.loads(_unb64(payload))
        claims = JobClaims(str(data["j"]), str(data["r"]), int(data["e"]))
    except (ValueError, KeyError, TypeError):
        return None
    return claims if now < claims.expires_at else None
