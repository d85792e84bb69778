"""The console's routes: ``/`` (the app, or the login form), ``/login``, ``/logout``, ``/static``.

Login works as Jupyter's does: open ``/?token=...`` once, or paste the token into the form.
The token then rides in an HttpOnly, SameSite=Strict session cookie, which the API's
``require_token`` accepts as it accepts a Bearer header; so every page, asset and API call
the console makes is behind it, and no script in the page can read the token. A write the
cookie authenticates (``/logout`` included) must come from this server's own pages: its
Origin is checked in front of every route (``deps.access_problem``).
"""

import html
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from naiad.server.audit import note_actor
from naiad.server.auth import token_matches
from naiad.server.deps import COOKIE
from naiad.web.assets import SECURITY_HEADERS, STATIC, ConsoleFiles, plotly_response, unauthorized

MAX_FORM_BYTES = 4096
WRONG_TOKEN = (
    "That is not this server's token. It is in the admin_token file under the Naiad home "
    "(e.g. ~/.naiad/admin_token)."
)


def _expected(request: Request) -> str | None:
    return request.app.state.naiad.token


def signed_in(request: Request) -> bool:
    expected = _expected(request)
    return expected is None or token_matches(request.cookies.get(COOKIE), expected)


def _login_page(message: str = "", status: int = 200) -> HTMLResponse:
    page = (STATIC / "login.html").read_text()
    notice = f'<p class="alert" role="alert">{html.escape(message)}</p>' if message else ""
    return HTMLResponse(page.replace("<!--message-->", notice), status, SECURITY_HEADERS)


def _enter(request: Request, token: str) -> Response:
    """Right token: set the session cookie and go to the console (the URL loses the token)."""
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


def _app_page() -> HTMLResponse:
    return HTMLResponse((STATIC / "index.html").read_text(), headers=SECURITY_HEADERS)


router = APIRouter(include_in_schema=False)


@router.get("/")
def index(request: Request, token: str | None = None) -> Response:
    expected = _expected(request)
    if token is not None and expected is not None:
        if token_matches(token, expected):
            return _enter(request, token)
        return _login_page(WRONG_TOKEN, 401)
    return _app_page() if signed_in(request) else _login_page()


@router.post("/login")
async def login(request: Request) -> Response:
    expected = _expected(request)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return _login_page("The form is too large; paste only the token.", 413)
    token = parse_qs(body.decode(errors="replace")).get("token", [""])[0].strip()
    if expected is None:
        return RedirectResponse("/", status_code=303)
    if not token_matches(token, expected):
        return _login_page(WRONG_TOKEN if token else "Enter the server's token.", 401)
    note_actor(request.scope, "console")  # the audit log's: who signed in
    return _enter(request, token)


@router.post("/logout")
def logout() -> Response:
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.get("/static/vendor/plotly.min.js")
def plotly_js(request: Request) -> Response:
    return plotly_response(request) if signed_in(request) else unauthorized()


def mount(app: FastAPI) -> None:
    """Add the console to ``app``: the routes above and the static folder."""
    app.include_router(router)
    app.mount("/static", ConsoleFiles(signed_in), name="console-static")
