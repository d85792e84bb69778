"""Typed dependencies for routes: the state, one transaction per request, the auth check."""

import re
import time
from collections.abc import Iterator
from typing import Annotated
from urllib.parse import unquote, urlsplit

from fastapi import Depends, Request, Response
from sqlalchemy.orm import Session
from starlette.requests import HTTPConnection

from naiad.core import api_keys, job_tokens
from naiad.core.errors import Forbidden, InvalidInput, NaiadError, Unauthorized
from naiad.core.job_tokens import JobClaims
from naiad.core.principals import (
    ADMIN_PRINCIPAL,
    DEFAULT_PROJECT,
    PROJECT_HEADER,
    Principal,
    Role,
    project_refusal,
)
from naiad.core.status import Status
from naiad.server.audit import note_actor
from naiad.server.auth import bearer, job_scope_problem, token_matches
from naiad.server.permissions import role_problem
from naiad.server.state import AppState
from naiad.settings import Settings
from naiad.store import access_keys, jobs, owners
from naiad.store.artifacts import ArtifactStore
from naiad.store.tables import utcnow


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
PRINCIPAL = "naiad.principal"  # where it leaves whom the request acts for
PROJECT = "naiad.project"  # ... and the project it works in (X-Naiad-Project, or default)
COOKIE = "naiad_token"  # the console's session cookie, HttpOnly, SameSite=Strict
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC = frozenset({"/api/v1/health", "/api/v1/login"})
_GATED = re.compile(r"/api/v1(/|$)|/endpoints/[^/]+/invocations$")
_PROJECT_NAME = re.compile(r"[a-z0-9][a-z0-9_.\-]{0,62}")
_KINDS = r"(runs|experiments|jobs|tuning-jobs|models|endpoints)"
_OBJECT = re.compile(rf"(?:/api/v1)?/{_KINDS}/([^/]+)(/.*)?")  # an object, by its URL
_IN_PROJECTS = re.compile(rf"/api/v1/({_KINDS[1:-1]}|sources)")  # a collection in a project
_DEFAULT_PORT = {"http": ":80", "https": ":443"}
NEEDS_TOKEN = (
    "This call needs a token: send 'Authorization: Bearer <token>' with an API key "
    "(`naiad login URL` stores one) or the admin token (the admin_token file under the Naiad "
    "home), or log in to the console at / first."
)
BAD_KEY = (
    "This API key does not work: it was revoked, it has expired, its user is disabled, or it "
    "is not one this server issued (keys change with the admin token). Sign in again with "
    "`naiad login URL`, or ask an admin for a new key."
)


def set_session_cookie(
    request: HTTPConnection, response: Response, token: str, max_age: int | None = None
) -> Response:
    """``response`` with the console's session cookie holding ``token``: HttpOnly,
    SameSite=Strict, Secure over HTTPS; for ``max_age`` seconds, else the browser's session."""
    response.set_cookie(
        COOKIE,
        token,
        max_age=max_age,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


def needs_token(path: str) -> bool:
    """Whether ``path`` is an API route that answers only with the token (all but /health)."""
    return bool(_GATED.match(path)) and path not in PUBLIC


def needs_lookup(conn: HTTPConnection) -> bool:
    """Whether the credentials are a user's key or session, which the store must confirm
    (the caller then checks from a worker thread, not the event loop)."""
    return api_keys.is_key(bearer(conn.headers.get("authorization"))) or api_keys.is_key(
        conn.cookies.get(COOKIE)
    )


def access_problem(conn: HTTPConnection, state: AppState, api: bool) -> NaiadError | None:
    """Why this request may not go on, judged from its headers alone, so that a refusal never
    waits for (or reads) a body; None when it may. Whom it acts for is left in the scope
    (``PRINCIPAL``; a job token's claims as ``JOB_SCOPE``).

    A Bearer token (the admin token, a user's API key, a job's token) is a script's: its
    role is all that is asked. The session cookie is a browser's, and a browser sends it
    with requests other pages make too (SameSite counts every port of 127.0.0.1 as one
    site), so a cookie-authenticated write must also come from this server's own pages.
    Signing in is the one write that carries its credentials in the form.
    ``api``: the path is an API route (see ``needs_token``), refused without a token.
    """
    expected = state.token
    if expected is None:
        return None
    method = "WebSocket" if conn.scope["type"] == "websocket" else conn.scope.get("method", "GET")
    presented = bearer(conn.headers.get("authorization"))
    if token_matches(presented, expected):
        return _admit(conn, ADMIN_PRINCIPAL, "admin", method)
    if state.job_key is not None and job_tokens.is_job_token(presented):
        assert presented is not None
        return _job_problem(conn, job_tokens.read(state.job_key, presented, time.time()), method)
    if api_keys.is_key(presented):
        assert presented is not None
        principal = _key_principal(state, presented, "key")
        if principal is None:
            return Unauthorized(BAD_KEY)
        return _admit(conn, principal, _actor(principal), method)
    cookie = conn.cookies.get(COOKIE)
    if token_matches(cookie, expected):
        principal, actor = ADMIN_PRINCIPAL, "console"
    elif api_keys.is_key(cookie) and (found := _key_principal(state, cookie or "", "session")):
        principal, actor = found, _actor(found)
    else:
        return Unauthorized(NEEDS_TOKEN) if api else None
    if method not in SAFE_METHODS and conn.url.path != "/login":
        problem = _cross_site(conn, method)
        if problem is not None:
            return problem
    return _admit(conn, principal, actor, method)


def _actor(principal: Principal) -> str:
    return f"user:{principal.name}" if principal.is_user else f"key:{principal.key}"


def _admit(
    conn: HTTPConnection, principal: Principal, actor: str, method: str
) -> NaiadError | None:
    conn.scope[PRINCIPAL] = principal
    note_actor(conn.scope, actor)
    named = conn.headers.get(PROJECT_HEADER)
    if named is not None:
        if not _PROJECT_NAME.fullmatch(named):
            return InvalidInput(f"X-Naiad-Project {named[:80]!r} is not a project name.")
        conn.scope[PROJECT] = named
    path = conn.url.path
    return None if path in PUBLIC else role_problem(principal, method, path)


def _key_principal(state: AppState, token: str, kind: str) -> Principal | None:
    """Whom a user's key (or console session) acts for; None when it does not work."""
    access_key_id = api_keys.read(state.key_key, token) if state.key_key else None
    if access_key_id is None:
        return None
    with state.sessions() as session:
        row = access_keys.find(session, access_key_id)
        if row is None or row.kind != kind:
            return None
        return access_keys.principal(session, row, utcnow())


def _job_problem(conn: HTTPConnection, claims: JobClaims | None, method: str) -> NaiadError | None:
    if claims is None:
        return Unauthorized(
            "This job token is not valid or has expired (a job's token lasts while its job "
            "does, and changes with the admin token)."
        )
    problem = job_scope_problem(claims, method, conn.url.path)
    if problem is None:
        conn.scope[JOB_SCOPE] = claims
        conn.scope[PRINCIPAL] = job_principal(claims.job, DEFAULT_PROJECT)  # until its row says
        note_actor(conn.scope, f"job:{claims.job}")
    return problem


def job_principal(job: str, project: str) -> Principal:
    """A job reads what anyone may (the default project) and its own project, where its
    token's scope lets it write its own run."""
    if project == DEFAULT_PROJECT:
        return Principal(f"job:{job}", "editor")
    return Principal(f"job:{job}", "viewer", projects=((project, "editor"),))


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


def project_of(conn: HTTPConnection) -> str:
    """The project this request works in: where what it creates goes."""
    named = conn.scope.get(PROJECT)
    return named if isinstance(named, str) else DEFAULT_PROJECT


def visible_projects(request: Request) -> set[str] | None:
    """The projects a list may show: the one the request names, else every project the
    caller has a role in (None: all)."""
    if PROJECT in request.scope:
        return {project_of(request)}
    return principal_of(request).visible()


VisibleDep = Annotated[set[str] | None, Depends(visible_projects)]


def principal_of(conn: HTTPConnection) -> Principal:
    """Whom this request acts for (the admin when the server runs without authentication)."""
    found = conn.scope.get(PRINCIPAL)
    return found if isinstance(found, Principal) else ADMIN_PRINCIPAL


def reads_rows(conn: HTTPConnection) -> bool:
    """Whether ``require_token`` will query the store for this request (a job's token, or
    a caller whose role depends on a project): the caller may then hop off the event loop."""
    return job_claims(conn) is not None or not principal_of(conn).sees_all


def require_token(request: Request, state: StateDep) -> None:
    """The API's check as a dependency: the middleware in ``limits`` has judged the headers
    already; what needs a row is judged here (a job still running, who created what an
    editor deletes)."""
    if state.token is None:
        return
    if PRINCIPAL not in request.scope:  # not behind ``limits.AccessCheck``
        problem = access_problem(request, state, api=True)
        if problem is not None:
            raise problem
    claims = job_claims(request)
    if claims is not None:
        with state.sessions() as session:
            found = jobs.run_status_project(session, claims.job)
        status = found[1] if found is not None and found[0] == claims.run_id else None
        if found is None or status is None or Status(status).terminal:
            ended = "no longer exists" if status is None else f"has ended ({status})"
            raise Unauthorized(
                f"This token belonged to job {claims.job!r}, which {ended}; a job's token "
                "works only while its job runs."
            )
        request.scope[PRINCIPAL] = job_principal(claims.job, found[2])
    principal = principal_of(request)
    if not principal.sees_all:
        _project_problem(request, state, principal)


def _project_problem(request: Request, state: AppState, principal: Principal) -> None:
    """The caller's role in the project of what the call reaches: the object its URL names,
    else the project it works in; and an editor deletes only what they created."""
    path, method = request.url.path, request.method
    named = _OBJECT.fullmatch(path)
    owner = None
    if named is not None:
        with state.sessions() as session:
            owner = owners.owner_of(session, named[1], unquote(named[2]))
    elif not _IN_PROJECTS.fullmatch(path):
        return  # users, keys, connections, ...: not in any project
    project = owner.project if owner is not None else project_of(request)
    reads = method in SAFE_METHODS or path.endswith("/search")
    needed: Role = "viewer" if reads else "editor"
    if not principal.may_in(project, needed):
        raise project_refusal(principal, project, needed, f"{method} {path}")
    if method != "DELETE" or named is None or named[3] or owner is None:
        return
    if owner.created_by != principal.name and not principal.may_in(project, "admin"):
        made_by = owner.created_by or "someone before creators were recorded"
        what = f"Deleting {named[1]}/{unquote(named[2])}, which {made_by} created,"
        raise project_refusal(principal, project, "admin", what)
