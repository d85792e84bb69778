"""The admin token: written once under the Naiad home (0600), required on every API call;
and what a job's own token (``core.job_tokens``) may do instead."""

import hmac
import os
import re
import secrets
from pathlib import Path

from naiad.core.errors import Forbidden
from naiad.core.job_tokens import JobClaims


def ensure_token(path: Path) -> str:
    """Read the token, creating it with owner-only permissions on first start."""
    if path.exists():
        token = path.read_text().strip()
        if token:
            return token
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.replace(tmp, path)
    return token


def token_matches(presented: str | None, expected: str) -> bool:
    return presented is not None and hmac.compare_digest(presented.encode(), expected.encode())


def bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


_READS = frozenset({"GET", "HEAD", "OPTIONS"})
_INVOKE = re.compile(r"/endpoints/[^/]+/invocations")
_NOT_FOR_JOBS = ("/api/v1/keys", "/api/v1/audit")  # keys' secrets; who did what


def job_scope_problem(claims: JobClaims, method: str, path: str) -> Forbidden | None:
    """Why a job's token may not make this call; None when it may.

    A job reads what the server holds (but no access key), writes its own run (metrics,
    params, tags, artifacts, its status), searches runs and invokes endpoints; anything
    else needs the admin token. Connections' secrets are checked by their route: a job
    reads only those its channels name.
    """
    who = f"The token of job {claims.job!r}"
    if path.startswith(_NOT_FOR_JOBS):
        return Forbidden(
            f"{who} cannot read access keys or the audit log; that needs the admin token."
        )
    if method in _READS and path.startswith("/api/v1/"):
        return None
    own = f"/api/v1/runs/{claims.run_id}"
    if method in ("POST", "PUT", "PATCH") and (path == own or path.startswith(own + "/")):
        return None
    if method == "POST" and (path == "/api/v1/runs/search" or _INVOKE.fullmatch(path)):
        return None
    return Forbidden(
        f"{who} may read, and write only its own run ({claims.run_id}); {method} {path} "
        "needs the admin token. A job's processes act with the least power they need: do "
        "this from your own machine, or after the job, with the admin token."
    )
