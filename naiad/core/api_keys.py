"""Users' API keys: one key serves Naiad's API (as a Bearer token) and the AWS-compatible
APIs (as an access key pair, signing with SigV4).

A key's secret is derived from its id with a key the server derives from the admin token
(HMAC-SHA256), so the database holds no secret at all, not even a hash: SigV4 needs the
secret itself to check a signature, and deriving it is how the server has it without
storing it. Changing the admin token voids every key, as it voids jobs' tokens.

Bearer form: ``naiad_<ACCESS_KEY_ID>_<SECRET>``.
"""

import base64
import hashlib
import hmac
import secrets
import string

PREFIX = "naiad_"
ID_LENGTH = 20
_ID_ALPHABET = string.ascii_uppercase + string.digits
_CONTEXT = b"naiad user keys v1"


def signing_key(admin_token: str) -> bytes:
    return hmac.new(admin_token.encode(), _CONTEXT, hashlib.sha256).digest()


def new_id() -> str:
    """An id shaped like AWS's: 20 characters, ``NK`` first."""
    return "NK" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(ID_LENGTH - 2))


def secret_of(key: bytes, access_key_id: str) -> str:
    """The 40-character secret of ``access_key_id`` (as AWS's, letters, digits, + and /)."""
    digest = hmac.new(key, access_key_id.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()[:40]


def bearer(access_key_id: str, secret: str) -> str:
    return f"{PREFIX}{access_key_id}_{secret}"


def is_key(token: str | None) -> bool:
    return token is not None and token.startswith(PREFIX)


def read(key: bytes, token: str) -> str | None:
    """The access key id of a genuine Bearer key; None for anything else (the caller then
    checks that the key is still issued, its user enabled and its expiry ahead)."""
    body = token[len(PREFIX) :]
    access_key_id, sep, secret = body[:ID_LENGTH], body[ID_LENGTH : ID_LENGTH + 1], body[21:]
    if not token.startswith(PREFIX) or sep != "_" or not secret:
        return None
    expected = secret_of(key, access_key_id)
    return access_key_id if hmac.compare_digest(secret.encode(), expected.encode()) else None
