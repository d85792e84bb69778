"""The console's routes: ``/`` (the app, or the login form), ``/login``, ``/logout``, ``/static``.

A user signs in with their name and password: the server issues a console session (a key of
kind "session", valid for ``SESSION_HOURS``) and sets it as an HttpOnly, SameSite=Strict
cookie. The machine's owner may sign in with the admin token instead, as in Jupyter: open
``/?token=...`` once, or paste it into the form; the cookie then holds the token. The API's
access check accepts the cookie as it accepts a Bearer header, so every page, asset and API
call the console makes is behind it, and no script in the page can read it. A write the
cookie authenticates (``/logout`` included) must come from this server's own pages: its
Origin is checked in front of every route (``deps.access_problem``).
"""

import html
from datetime import timedelta
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from naiad.core import api_keys
from naiad.core.errors import TooManyRequests
from naiad.server.audit import note_actor
from naiad.server.auth import token_matches
from naiad.server.deps import COOKIE, PRINCIPAL, set_session_cookie
from naiad.server.routes.users import WRONG_PASSWORD
from naiad.settings import Settings
from naiad.store import access_keys, users
from naiad.store.db import transaction
from naiad.store.tables import utcnow
from naiad.web.assets import SECURITY_HEADERS, STATIC, ConsoleFiles, plotly_response, unauthorized
from naiad.web.oidc_config import OidcConfig

MAX_FORM_BYTES = 4096
SESSION_HOURS = 12
WRONG_TOKEN = (
    "That is not this server's token. It is in the admin_token file under the Naiad home "
    "(e.g. ~/.naiad/admin_token)."
)


def _expected(request: Request) -> str | None:
    return request.app.state.naiad.token


def signed_in(request: Request) -> bool:
    """Whether the access check in front of every route found the cookie good."""
    return _expected(request) is None or PRINCIPAL in request.scope


def login_page(request: Request, message: str = "", status: int = 200) -> HTMLResponse:
    """The sign-in form: name and password once users exist, the token folded away; on a
    server without users (one person's machine), the token alone, as before users."""
    page = (STATIC / "login.html").read_text()
    with request.app.state.naiad.sessions() as session:
        any_users = users.any_exist(session)
    if not any_users:
        start, end = page.index("<!--users-->"), page.index("<!--/users-->")
        rest = page[end:].replace("<details>", "<details open>", 1)
        page = page[:start] + rest.replace('autocomplete="off">', 'autocomplete="off" autofocus>')
    oidc = request.app.state.oidc
    if oidc is not None:
        link = (
            f'<a class="button sso" href="/login/oidc">Sign in with {html.escape(oidc.label)}</a>'
        )
        page = page.replace("<!--sso-->", link)
    notice = f'<p class="alert" role="alert">{html.escape(message)}</p>' if message else ""
    return HTMLResponse(page.replace("<!--message-->", notice), status, SECURITY_HEADERS)


def _enter(request: Request, token: str) -> Response:
    """Right credentials: set the session cookie and go to the console (the URL loses the
    token)."""
    return set_session_cookie(request, RedirectResponse("/", status_code=303), token)


def _app_page() -> HTMLResponse:
    return HTMLResponse((STATIC / "index.html").read_text(), headers=SECURITY_HEADERS)


router = APIRouter(include_in_schema=False)


@router.get("/")
def index(request: Request, token: str | None = None) -> Response:
    expected = _expected(request)
    if token is not None and expected is not None:
        if token_matches(token, expected):
            return _enter(request, token)
        return login_page(request, WRONG_TOKEN, 401)
    return _app_page() if signed_in(request) else login_page(request)


@router.post("/login")
async def login(request: Request) -> Response:
    expected = _expected(request)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return login_page(request, "The form is too large.", 413)
    form = parse_qs(body.decode(errors="replace"))
    token = form.get("token", [""])[0].strip()
    user, password = form.get("user", [""])[0].strip(), form.get("password", [""])[0]
    if expected is None:
        return RedirectResponse("/", status_code=303)
    if not token:
        if not user or not password:
            return login_page(
                request, "Enter your user name and password (or the server's token).", 401
            )
        try:
            session = await run_in_threadpool(_start_session, request, user, password)
        except TooManyRequests as exc:
            return login_page(request, exc.message, 429)
        if session is None:
            return login_page(request, WRONG_PASSWORD, 401)
        note_actor(request.scope, f"user:{user}")
        return _enter(request, session)
    if not token_matches(token, expected):
        return login_page(request, WRONG_TOKEN, 401)
    note_actor(request.scope, "console")  # the audit log's: who signed in
    return _enter(request, token)


def _start_session(request: Request, user: str, password: str) -> str | None:
    """A new console session for the user whose password this is: its cookie value
    (failed sign-ins are counted, and refused with TooManyRequests past the limits)."""
    state = request.app.state.naiad
    address = request.client.host if request.client else ""
    with transaction(state.sessions) as session:
        row = state.sign_ins.attempt(
            user, address, lambda: users.authenticate(session, user, password)
        )
        return None if row is None else start_session(session, state.key_key, row.name)


def start_session(session: Session, key: bytes, user: str) -> str:
    """A console session for ``user``, valid ``SESSION_HOURS``: the cookie's value."""
    access_keys.drop_expired(session, user)
    expires = utcnow() + timedelta(hours=SESSION_HOURS)
    row = access_keys.issue(session, user, "console", expires_at=expires, kind=access_keys.SESSION)
    return api_keys.bearer(row.access_key_id, access_keys.secret(row, key))


def _end_session(request: Request) -> None:
    state = request.app.state.naiad
    cookie = request.cookies.get(COOKIE)
    key_id = api_keys.read(state.key_key, cookie) if state.key_key and cookie else None
    if key_id is not None:
        with transaction(state.sessions) as session:
            row = access_keys.find(session, key_id)
            if row is not None:
                session.delete(row)


@router.post("/logout")
def logout(request: Request) -> Response:
    """Sign out: a user's session is revoked, not only forgotten by this browser."""
    _end_session(request)
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.get("/static/vendor/plotly.min.js")
def plotly_js(request: Request) -> Response:
    return plotly_response(request) if signed_in(request) else unauthorized()


def mount(app: FastAPI, settings: Settings) -> None:
    """Add the console to ``app``: the routes above, sign-in with OpenID Connect when it is
    configured, and the static folder."""
    app.include_router(router)
    app.state.oidc = OidcConfig.of(settings)
    if app.state.oidc is not None:
        from naiad.web import oidc  # authlib: only where a provider is configured

        app.include_router(oidc.router)
    app.mount("/static", ConsoleFiles(signed_in), name="console-static")
