"""``/notebooks/NAME/...``: a notebook's JupyterLab through the server's own URL.

Behind Naiad's login: the console's session cookie (a browser) or the bearer token (a
script) opens it, anything else is refused before a byte goes upstream (a browser asking
for a page is sent to the login form). Every method, streamed bodies and the kernels'
WebSockets pass through; JupyterLab's own token is added on the way and never reaches
the browser, and Naiad's credentials never reach JupyterLab. A GET carrying a presigned
link's ``authToken`` is answered by ``presigned.enter`` (log in, then the same URL).
"""

from fastapi import APIRouter, Request, WebSocket
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection
from starlette.responses import RedirectResponse, Response

from naiad.core.errors import NaiadError, Unauthorized
from naiad.server import presigned
from naiad.server.controller.notebooks import NotebookKeeper
from naiad.server.deps import access_problem
from naiad.server.errors import error_response
from naiad.server.managed.notebooks import PREFIX
from naiad.server.state import AppState
from naiad.store import notebooks
from naiad.store.db import transaction

router = APIRouter(include_in_schema=False)
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


class NotebookUnavailable(NaiadError):
    """The notebook exists but its JupyterLab is not serving (starting, stopped, failed)."""

    status_code = 503
    code = "unavailable"


def _state(conn: HTTPConnection) -> AppState:
    state: AppState = conn.app.state.naiad
    return state


def _refusal(request: Request, problem: NaiadError) -> Response:
    wants_page = request.method == "GET" and "text/html" in request.headers.get("accept", "")
    if isinstance(problem, Unauthorized) and wants_page:
        return RedirectResponse("/", status_code=303)  # the console's login form
    return error_response(problem.code, problem.message, problem.status_code)


def _unavailable(conn: HTTPConnection, name: str) -> NaiadError:
    """Why the notebook cannot be reached now, from its row."""
    with transaction(_state(conn).sessions) as session:
        row = notebooks.get(session, name)  # NotFound when there is no such notebook
        status, reason = row.status, row.status_reason
    return NotebookUnavailable(
        f"Notebook {name!r} is {status}"
        + (f" ({reason})" if reason else "")
        + (
            "; start it with `naiad notebooks start " + name + "`."
            if status in ("Stopped", "Failed")
            else "; retry in a few seconds."
        )
    )


@router.api_route(f"{PREFIX}/{{name}}", methods=METHODS)
def bare(name: str) -> Response:
    return RedirectResponse(f"{PREFIX}/{name}/lab", status_code=307)


@router.api_route(f"{PREFIX}/{{name}}/{{path:path}}", methods=METHODS)
async def http(request: Request, name: str, path: str) -> Response:
    state = _state(request)
    if request.method == "GET" and presigned.PARAM in request.query_params:
        return presigned.enter(request, state.token, name)
    problem = await run_in_threadpool(access_problem, request, state, True)
    if problem is not None:
        return _refusal(request, problem)
    keeper = state.services.get(NotebookKeeper)
    live = keeper.fleet.live(name) if keeper is not None else None
    if keeper is None or live is None:
        try:
            error = _unavailable(request, name)
        except NaiadError as exc:
            error = exc
        return error_response(error.code, error.message, error.status_code)
    port, headers = live
    return await keeper.forwarder.http(
        request, ("127.0.0.1", port), request.url.path, f"Notebook {name!r}", headers
    )


@router.websocket(f"{PREFIX}/{{name}}/{{path:path}}")
async def websocket(client: WebSocket, name: str, path: str) -> None:
    state = _state(client)
    problem = await run_in_threadpool(access_problem, client, state, True)
    keeper = state.services.get(NotebookKeeper)
    live = keeper.fleet.live(name) if keeper is not None else None
    if problem is None and (keeper is None or live is None):
        try:
            problem = _unavailable(client, name)
        except NaiadError as exc:
            problem = exc
    if problem is not None or keeper is None or live is None:
        refusal = problem or NotebookUnavailable(f"Notebook {name!r} is not serving.")
        if "websocket.http.response" in client.scope.get("extensions", {}):
            response = error_response(refusal.code, refusal.message, refusal.status_code)
            await client.send_denial_response(response)
        else:
            await client.close(code=1008, reason=refusal.message[:120])
        return
    port, headers = live
    await keeper.forwarder.websocket(
        client, ("127.0.0.1", port), client.url.path, f"Notebook {name!r}", headers
    )
