"""Every error becomes JSON with a sentence; no stack trace ever reaches a client.

Every error body the server sends, from a route, a middleware or the proxy, is built by
:func:`error_body`: ``{"error": code, "message": sentence, "detail": ...}``. Clients map
an error back by its ``code`` (see ``naiad.sdk.http``).
"""

import errno
import logging
import os
from pathlib import Path

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError, InvalidatePoolError
from starlette.exceptions import HTTPException
from starlette.types import Send

from naiad.core.errors import NaiadError
from naiad.store.db import database_unavailable, disk_full, sqlite_path

log = logging.getLogger("naiad.server")

_UNPARSABLE = "There was an error parsing the body"


def error_body(code: str, message: str, detail: object = None) -> bytes:
    """The one shape of an error the server answers with."""
    return orjson.dumps({"error": code, "message": message, "detail": detail})


def error_response(code: str, message: str, status: int, detail: object = None) -> Response:
    return Response(error_body(code, message, detail), status, media_type="application/json")


async def send_error(send: Send, status: int, code: str, message: str) -> None:
    """The same answer from ASGI middleware, which answers before any route runs."""
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": error_body(code, message)})


def _where(loc: tuple) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "request body"


def _mount_point(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def _storage_message(request: Request, exc: Exception) -> str:
    """Which filesystem is full, as precisely as the error tells, and what to do."""
    state = request.app.state.naiad
    origin = exc.orig if isinstance(exc, DBAPIError) else exc
    if getattr(origin, "sqlstate", None):
        return (
            "The PostgreSQL server ran out of disk space, so nothing was saved; free space on "
            "the database server and retry."
        )
    if isinstance(exc, OSError) and exc.filename:
        where = Path(os.fsdecode(exc.filename))
    else:
        database = sqlite_path(state.engine) if isinstance(exc, DBAPIError) else None
        where = database or state.settings.home
    quota = isinstance(exc, OSError) and exc.errno == errno.EDQUOT
    what = "your disk quota on" if quota else "the filesystem holding"
    mount = _mount_point(where)
    mounted = "" if mount == where else f" (mounted at {mount})"
    return (
        f"Out of disk space: {what} {where}{mounted} is full, so nothing was saved. Free "
        "space (`naiad gc` removes finished jobs' work directories) and retry."
    )


UNEXPECTED = "The server hit an unexpected error; nothing was changed. See the server log."
DATABASE_UNAVAILABLE = (
    "The server cannot reach its database right now (it may be restarting); nothing was "
    "changed. Retry in a moment: the SDK keeps what it logs and sends it again on its own."
)


def install(app: FastAPI) -> None:
    @app.exception_handler(NaiadError)
    async def naiad_error(_: Request, exc: NaiadError) -> Response:
        return error_response(exc.code, exc.message, exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        said = request.headers.get("content-type", "")
        if "json" not in said and any(tuple(e.get("loc", ())) == ("body",) for e in exc.errors()):
            # FastAPI reads a body as JSON only when it is declared so; say that, not pydantic's
            # "Input should be a valid dictionary".
            message = (
                f"The request body was sent as {said or 'no Content-Type'}; send it as JSON "
                "with 'Content-Type: application/json'."
            )
            return error_response("unsupported_media_type", message, 415)
        problems = []
        for err in exc.errors()[:10]:
            if err.get("type") == "json_invalid":
                reason = (err.get("ctx") or {}).get("error", "it is malformed")
                position = err.get("loc", ("body", "?"))[-1]
                message = (
                    f"The request body is not valid JSON ({reason} at character {position}); "
                    "send a JSON object."
                )
                return error_response(
                    "invalid_input", message, 422, [{"loc": ["body"], "msg": reason}]
                )
            msg = str(err.get("msg", "is invalid"))
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, ") :]
            problems.append(f"{_where(tuple(err.get('loc', ())))}: {msg}")
        message = "The request is not valid: " + "; ".join(problems) + "."
        detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in exc.errors()[:50]]
        return error_response("invalid_input", message, 422, detail)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> Response:
        messages = {
            404: "No such API route; see /api/v1/docs for the routes.",
            405: "This route does not take that HTTP method; see /api/v1/docs.",
        }
        if exc.detail == _UNPARSABLE:  # FastAPI's words for a body it could not decode
            messages[400] = (
                "The request body could not be read as JSON (it is not UTF-8 text, or it is "
                "nested too deeply); send a JSON object."
            )
        message = (
            exc.detail
            if isinstance(exc.detail, str) and exc.status_code not in messages
            else messages.get(exc.status_code, str(exc.detail))
        )
        code = "payload_too_large" if exc.status_code == 413 else "http_error"
        return error_response(code, message, exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> Response:
        log.exception("unhandled error", exc_info=exc)
        return error_response("internal_error", UNEXPECTED, 500)

    @app.exception_handler(OSError)
    @app.exception_handler(DBAPIError)
    @app.exception_handler(InvalidatePoolError)
    async def storage_error(request: Request, exc: Exception) -> Response:
        """507 when the disk is full, 503 while the database cannot be reached; anything
        else an OS or database error is a 500."""
        if database_unavailable(exc):
            log.warning("the database is unavailable: %s", str(exc).splitlines()[0][:300])
            response = error_response("database_unavailable", DATABASE_UNAVAILABLE, 503)
            response.headers["retry-after"] = "1"
            return response
        if not disk_full(exc):
            return await unexpected(request, exc)
        message = _storage_message(request, exc)
        log.error("%s (%s)", message, exc.__class__.__name__)
        return error_response("insufficient_storage", message, 507)
