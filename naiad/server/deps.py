"""Typed dependencies for routes: the state, one transaction per request, the auth check."""

import re
import time
from collections.abc import Iterator
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from naiad.core import job_tokens
from naiad.core.errors import Forbidden, NaiadError, Unauthorized
from naiad.core.job_tokens import JobClaims
from naiad.core.status import Status
from naiad.server.audit import note_actor
from naiad.server.auth import bearer, job_scope_problem, token_matches
from naiad.server.state import AppState
from naiad.settings import Settings
from naiad.store import jobs
from naiad.store.artifacts import ArtifactStore


def get_state(request: Request) -> AppState:
    return request.app.state.naiad


StateDep = Annotated[AppState, Depends(get_state)]


def get_session(state: StateDep) -> Iterator[Session]:
    """Commit when the route returns, before the response is sent; roll back on any error."""
    with state.sessions() as session, session.begin():
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_settings(state: StateDep) -> Settings:
    return state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_artifacts(state: StateDep) -> ArtifactStore:
    return state.artifacts


ArtifactsDep = Annotated[ArtifactStore, Depends(get_artifacts)]


JOB_SCOPE = "naiad.job"  # where the access check leaves a job token's claims
COOKIE = "naiad_token"  # the console's session cookie: the token, HttpOnly, SameSite=Strict
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC = frozenset({"/api/v1/health"})
_GATED = re.compile(r"/api/v1(/|$)|/endpoints/[^/]+/invocations$")
_DEFAULT_PORT = {"http": ":80", "https": ":443"}
NEEDS_TOKEN = (
    "This call needs the server's token: send 'Authorization: Bearer <token>' (the token is "
    "in the admin_token file under the Naiad home), or log in to the console at / first."
)


def needs_token(path: str) -> bool:
    """Whether ``path`` is an API route that answers only with the token (all but /health)."""
    return bool(_GATED.match(path)) and path not in PUBLIC


def access_problem(
    conn: HTTPConnection, expected: str | None, api: bool, job_key: bytes | None = None
) -> NaiadError | None:
    """Why this request may not go on, judged from its headers alone, so that a refusal never
    waits for (or reads) a body; None when it may.

    A Bearer token is a script's: nothing more is asked. The session cookie is a browser's,
    and a browser sends it with requests other pages make too (SameSite counts every port of
    127.0.0.1 as one site), so a cookie-authenticated write must also come from this
    server's own pages. Logging in is the one write that carries its token in the form.
    ``api``: the path is an API route (see ``needs_token``), refused without a token.
    ``job_key``: accept jobs' own tokens too, for what their scope allows (the claims are
    left in the scope as ``naiad.job`` for ``require_token`` and the routes).
    """
    if expected is None:
        return None
    presented = bearer(conn.headers.get("authorization"))
    if token_matches(presented, expected):
        note_actor(conn.scope, "admin")
        return None
    if job_key is not None and job_tokens.is_job_token(presented):
        assert presented is not None
        return _job_problem(conn, job_tokens.read(job_key, presented, time.time()))
    if not token_matches(conn.cookies.get(COOKIE), expected):
        return Unauthorized(NEEDS_TOKEN) if api else None
    note_actor(conn.scope, "console")
    # A WebSocket handshake is a GET that opens a two-way channel: check it as a write.
    method = "WebSocket" if conn.scope["type"] == "websocket" else conn.scope.get("method", "GET")
    if method in SAFE_METHODS or conn.url.path == "/login":
        return None
    return _cross_site(conn, method)


def _job_problem(conn: HTTPConnection, claims: JobClaims | None) -> NaiadError | None:
    if claims is None:
        return Unauthorized(
            "This job token is not valid or has expired (a job's token lasts while its job "
            "does, and changes with the admin token)."
        )
    method = "WebSocket" if conn.scope["type"] == "websocket" else conn.scope.get("method", "GET")
    problem = job_scope_problem(claims, method, conn.url.path)
    if problem is None:
        conn.scope[JOB_SCOPE] = claims
        note_actor(conn.scope, f"job:{claims.job}")
    return problem


def job_claims(conn: HTTPConnection) -> JobClaims | None:
    """The job whose token this request carries; None for the admin token or a cookie."""
    claims = conn.scope.get(JOB_SCOPE)
    return claims if isinstance(claims, JobClaims) else None


def _cross_site(conn: HTTPConnection, method: str) -> Forbidden | None:
    """None when the write's Origin (or, lacking one, its Referer) is this server itself."""
    source = conn.headers.get("origin")
    if source is None:
        source = conn.headers.get("referer")
    if source is None:
        return Forbidden(
            f"This {method} carries the console's session cookie but no Origin or Referer "
            "header, so the server cannot tell that the console sent it, and refused it; "
            "scripts send 'Authorization: Bearer <token>' instead of the cookie."
        )
    try:
        parts = urlsplit(source)
    except ValueError:
        parts = urlsplit("")
    default = _DEFAULT_PORT.get(parts.scheme)
    if default is not None and parts.netloc:
        theirs = parts.netloc.rpartition("@")[2].lower().removesuffix(default)
        ours = conn.headers.get("host", "").lower().removesuffix(default)
        if theirs == ours:
            return None
    shown = f"{parts.scheme}://{parts.netloc}" if default and parts.netloc else source[:80]
    return Forbidden(
        f"This {method} came from a page that is not this server's ({shown}) with the "
        "console's session cookie, and was refused so that no other page can act for a "
        "logged-in console; use the console itself, or send 'Authorization: Bearer <token>' "
        "from a script."
    )


def require_token(request: Request, state: StateDep) -> None:
    """The API's check as a dependency (the middleware in ``limits`` has run it already)."""
    problem = access_problem(request, state.token, api=True, job_key=state.job_key)
    if problem is not None:
        raise problem
    claims = job_claims(request)
    if claims is not None:
        with state.sessions() as session:
            found = jobs.run_and_status(session, claims.job)
        status = found[1] if found is not None and found[0] == claims.run_id else None
        if status is None or Status(status).terminal:
            ended = "no longer exists" if status is None else f"has ended ({status})"
            raise Unauthorized(
                f"This token belonged to job {claims.job!r}, which {ended}; a job's token "
                "works only while its job runs."
            )
