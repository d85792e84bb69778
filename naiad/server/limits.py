"""Guards in front of every route: credentials, oversized JSON bodies and NUL characters in
the URL.

Credentials are checked from the headers before any byte of a body is read, uploads
included, so a client without the token cannot make the server take in a large body.
Artifact uploads have their own size limit and are exempt from the body limit.
"""

import re

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from naiad.core import principals
from naiad.core.principals import DEFAULT_PROJECT
from naiad.server.deps import PRINCIPAL, PROJECT, access_problem, needs_lookup, needs_token
from naiad.server.errors import send_error


def too_large(size: str, max_bytes: int) -> str:
    """The 413's sentence (``size`` as the client's Content-Length, or 'over N')."""
    return (
        f"The request body is {size} bytes; the server takes at most {max_bytes}. "
        "Send smaller batches."
    )


class AccessCheck:
    """401 without the token on an API route, 403 for a cookie write from another site or a
    call the caller's role does not allow (see ``deps.access_problem``), judged from the
    headers before any byte of a body is read."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            state = scope["app"].state.naiad
            socket = scope["type"] == "websocket"  # every socket needs the token
            api = socket or needs_token(scope["path"])
            conn = HTTPConnection(scope)
            if needs_lookup(conn):  # a user's key: the store confirms it, off the event loop
                problem = await run_in_threadpool(access_problem, conn, state, api)
            else:
                problem = access_problem(conn, state, api)
            if problem is not None and socket:
                await send({"type": "websocket.close", "code": 1008})  # refused handshake: 403
                return
            if problem is not None:
                await send_error(send, problem.status_code, problem.code, problem.message)
                return
            # what this request creates is theirs, in the project it names
            principals.set_current(scope.get(PRINCIPAL), scope.get(PROJECT, DEFAULT_PROJECT))
        await self.app(scope, receive, send)


class BodyLimit:
    """413 for a body over ``max_bytes``: by its Content-Length, or counted as it streams in
    (a chunked request has no Content-Length). ``exempt`` matches the paths it leaves alone.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, exempt: str) -> None:
        self.app, self.max_bytes, self.exempt = app, max_bytes, re.compile(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.exempt.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                message = too_large(str(int(value)), self.max_bytes)
                await send_error(send, 413, "payload_too_large", message)
                return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # FastAPI re-raises an HTTPException met while reading the body.
                    raise HTTPException(413, too_large(f"over {self.max_bytes}", self.max_bytes))
            return message

        await self.app(scope, counted, send)


class NoNulInUrl:
    """400 for a NUL (%00) in the path or query: no name, id, key or path may hold one, and
    PostgreSQL cannot even compare against one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            "\x00" in scope["path"]
            or b"%00" in scope["query_string"]
            or b"\x00" in scope["query_string"]
        ):
            message = "The URL contains a NUL character (%00); remove it and retry."
            await send_error(send, 400, "invalid_input", message)
            return
        await self.app(scope, receive, send)
