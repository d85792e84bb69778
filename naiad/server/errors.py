"""Every error becomes JSON with a sentence; no stack trace ever reaches a client."""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from naiad.core.errors import NaiadError

log = logging.getLogger("naiad.server")

_UNPARSABLE = "There was an error parsing the body"


def _body(code: str, message: str, status: int, detail: object = None) -> JSONResponse:
    return JSONResponse({"error": code, "message": message, "detail": detail}, status_code=status)


def _where(loc: tuple) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "request body"


def install(app: FastAPI) -> None:
    @app.exception_handler(NaiadError)
    async def naiad_error(_: Request, exc: NaiadError) -> JSONResponse:
        return _body(exc.code, exc.message, exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for err in exc.errors()[:10]:
            if err.get("type") == "json_invalid":
                reason = (err.get("ctx") or {}).get("error", "it is malformed")
                position = err.get("loc", ("body", "?"))[-1]
                message = (
                    f"The request body is not valid JSON ({reason} at character {position}); "
                    "send a JSON object."
                )
                return _body("invalid_input", message, 422, [{"loc": ["body"], "msg": reason}])
            msg = str(err.get("msg", "is invalid"))
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, ") :]
            problems.append(f"{_where(tuple(err.get('loc', ())))}: {msg}")
        message = "The request is not valid: " + "; ".join(problems) + "."
        detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in exc.errors()[:50]]
        return _body("invalid_input", message, 422, detail)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
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
        return _body(code, message, exc.status_code)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return _body(
            "internal_error",
            "The server hit an unexpected error; nothing was changed. See the server log.",
            500,
        )
