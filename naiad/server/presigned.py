"""Presigned notebook links: ``/notebooks/NAME/lab?authToken=...`` opens a notebook in a
browser that holds no token (SageMaker's ``CreatePresignedNotebookInstanceUrl``).

The ``authToken`` is ``EXPIRES.SESSION.MAC``: the moment the link stops working (epoch
seconds, 5 minutes after it was made, as on AWS), how long the browser's session lasts
once it is opened, and an HMAC-SHA256 of both and the notebook's name under a key derived
from the admin token for this one purpose (so a link is worth nothing for any other
notebook or use, and every link dies when the token changes). The first GET with a valid
one logs the browser in as the console's login does (the session cookie, here for
SESSION seconds) and redirects to the same URL without the token; an expired or altered
one is refused with a page that says which.
"""

import base64
import hashlib
import hmac
import html
import time

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from naiad.server.deps import set_session_cookie
from naiad.server.errors import error_response

PARAM = "authToken"
LINK_S = 300  # a link opens the notebook within this long after it was made
_PURPOSE = b"naiad-presigned-notebook-url-v1"


class LinkProblem(Exception):
    """Why a link does not open its notebook."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _mac(token: str, name: str, expires: int, session_s: int) -> str:
    key = hmac.new(token.encode(), _PURPOSE, hashlib.sha256).digest()
    signed = f"notebook\n{name}\n{expires}\n{session_s}".encode()
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign(token: str, name: str, session_s: int, now: float | None = None) -> str:
    """The ``authToken`` of a link to notebook ``name`` that works for ``LINK_S`` seconds
    and opens a session of ``session_s`` seconds."""
    expires = int(time.time() if now is None else now) + LINK_S
    return f"{expires}.{session_s}.{_mac(token, name, expires, session_s)}"


def verify(token: str, name: str, auth: str, now: float | None = None) -> int:
    """The session's length in seconds, or LinkProblem saying why the link is refused."""
    parts = auth.split(".")
    expires_text, session_text, mac = parts if len(parts) == 3 else ("", "", "")
    if not (expires_text.isdigit() and session_text.isdigit()) or not hmac.compare_digest(
        mac.encode(), _mac(token, name, int(expires_text), int(session_text)).encode()
    ):
        raise LinkProblem(
            f"This link to notebook {name!r} is not valid: its authToken does not match "
            "(the link was altered, is for another notebook, or was made before the "
            "server's token changed). Ask for a new one with "
            "CreatePresignedNotebookInstanceUrl, or log in to the console at /."
        )
    expires, session_s = int(expires_text), int(session_text)
    moment = time.time() if now is None else now
    if moment > expires:
        ago = int(moment - expires)
        raise LinkProblem(
            f"This link to notebook {name!r} expired {ago} s ago: a presigned notebook link "
            f"opens the notebook within {LINK_S // 60} minutes of being made. Ask for a new "
            "one with CreatePresignedNotebookInstanceUrl, or log in to the console at /."
        )
    return session_s


def enter(request: Request, token: str | None, name: str) -> Response:
    """Answer a GET that carries an ``authToken``: the session cookie and a redirect to the
    same URL without it, or the refusal (a page for a browser, JSON otherwise)."""
    clean = request.url.remove_query_params(PARAM)
    target = clean.path + (f"?{clean.query}" if clean.query else "")
    if token is None:  # the server runs without a login: nothing to enter
        return RedirectResponse(target, status_code=303)
    try:
        session_s = verify(token, name, request.query_params[PARAM])
    except LinkProblem as exc:
        if "text/html" in request.headers.get("accept", ""):
            page = (
                "<!doctype html><meta charset='utf-8'><title>Link refused</title>"
                f"<p>{html.escape(exc.message)}</p>"
            )
            return HTMLResponse(page, status_code=403)
        return error_response("forbidden", exc.message, 403)
    return set_session_cookie(request, RedirectResponse(target, status_code=303), token, session_s)
