"""The replica's HTTP app: a bare ASGI callable, because it is on every request's path.

Routes follow a SageMaker serving container: ``GET /ping``, ``POST /invocations``, plus
``GET /metrics`` (Prometheus text), ``GET /stats`` (JSON for the controller) and
``POST /frames`` (many invocations in one message from the server's proxy). No
framework router, no per-request logging: a request costs header scanning, one decode,
one queue entry and one encode. Every failure is a JSON ``{"error", "message"}`` with a
4xx (a model failure on valid input is 422, a full queue 503 + Retry-After); nothing a
client sends can take the replica down.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import orjson
from prometheus_client import CONTENT_TYPE_LATEST

from naiad.core import frames
from naiad.core.errors import NaiadError, PayloadTooLarge
from naiad.serving.batcher import Batcher, ModelError
from naiad.serving.capture import Capture
from naiad.serving.codec import JSON, NPY, Codec
from naiad.serving.stats import ReplicaStats

log = logging.getLogger("naiad.serving")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

PROMETHEUS = CONTENT_TYPE_LATEST.encode()
_ROUTES = {"/invocations": b"POST", "/ping": b"GET", "/metrics": b"GET", "/stats": b"GET"}


_Queued = tuple[np.ndarray, asyncio.Future[np.ndarray]]  # a request's inputs, its answer


class _Gone(Exception):
    """The client disconnected before its body arrived."""


def error_body(code: str, message: str) -> bytes:
    return orjson.dumps({"error": code, "message": message})


def request_headers(scope: Scope) -> tuple[bytes, bytes, int]:
    """(Content-Type, Accept, Content-Length or -1) of a request, in one pass."""
    content_type = accept = b""
    length = -1
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = value
        elif name == b"accept":
            accept = value
        elif name == b"content-length":
            length = int(value) if value.isdigit() else -1
    return content_type, accept, length


async def respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes = JSON,
    extra: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body)), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class InvocationApp:
    """The ASGI app's routes, figures and body reading; a subclass answers invocations."""

    def __init__(
        self,
        stats: ReplicaStats,
        *,
        max_body_bytes: int = 16 * 1024 * 1024,
        capture: Capture | None = None,
    ) -> None:
        self.stats = stats
        self.max_body_bytes = max_body_bytes
        self.capture = capture
        self.draining: Callable[[], bool] = lambda: False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await _lifespan(receive, send)
            return
        path = scope["path"]
        if scope["method"] != "POST" or (path != "/invocations" and path != frames.PATH):
            try:
                await self._other(scope, send)
            except Exception:
                await self._internal_error(scope, send)
            return
        if path == frames.PATH:
            try:
                await self._frames(receive, send)
            except _Gone:
                pass
            except Exception:
                await self._internal_error(scope, send)
            return
        # Only invocations count in the figures: health checks and scrapes would skew them.
        started = time.perf_counter()
        stats = self.stats
        stats.in_flight += 1
        status = 500
        try:
            status = await self._invocations(scope, receive, send)
        except _Gone:
            status = 499  # nginx's "client closed request": counted, never sent
        except Exception:
            await self._internal_error(scope, send)
        finally:
            stats.in_flight -= 1
            now = time.perf_counter()
            stats.record_request(status, now - started, now)

    async def _internal_error(self, scope: Scope, send: Send) -> None:
        """A bug of ours: logged once here, answered without the traceback."""
        log.exception("Unexpected error answering %s %s", scope["method"], scope["path"])
        await respond(send, 500, error_body("internal", "The replica failed unexpectedly."))

    async def _other(self, scope: Scope, send: Send) -> None:
        path = scope["path"]
        method = scope["method"]
        if method == "GET":
            if path == "/ping":  # 503 once SIGTERM came: a balancer stops sending here
                if self.draining():
                    return await respond(send, 503, b'{"status":"draining"}')
                return await respond(send, 200, b'{"status":"ready"}')
            if path == "/metrics":
                return await respond(send, 200, self.stats.prometheus(), PROMETHEUS)
            if path == "/stats":
                return await respond(
                    send, 200, orjson.dumps(self.stats.snapshot(time.perf_counter()))
                )
        allowed = _ROUTES.get(path)
        if allowed is None:
            known = ", ".join(f"{m.decode()} {p}" for p, m in _ROUTES.items())
            message = f"There is no {path}; this replica answers {known}."
            return await respond(send, 404, error_body("not_found", message))
        message = f"{path} answers {allowed.decode()}, not {method}."
        body = error_body("method_not_allowed", message)
        await respond(send, 405, body, extra=((b"allow", allowed),))

    async def _invocations(self, scope: Scope, receive: Receive, send: Send) -> int:
        """Answer one ``POST /invocations``; returns the status sent, for the figures."""
        raise NotImplementedError

    async def _frames(self, receive: Receive, send: Send) -> None:
        """Answer ``POST /frames`` (see ``naiad.core.frames``); a 404 tells the server's
        proxy to send this replica's requests one by one."""
        await respond(send, 404, error_body("not_found", "This replica takes no frames."))

    async def _body(self, receive: Receive, limit: int | None = None) -> bytes:
        """The whole body; PayloadTooLarge past ``limit`` (the per-request limit)."""
        limit = self.max_body_bytes if limit is None else limit
        message = await receive()
        if message["type"] != "http.request":
            raise _Gone()
        body = message.get("body", b"")
        if not message.get("more_body", False):
            if len(body) > limit:
                raise self._too_large()
            return body
        chunks = [body]
        size = len(body)
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise _Gone()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise self._too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"The body is over this replica's limit of {self.max_body_bytes} bytes; "
            "send fewer rows per request."
        )


class ReplicaApp(InvocationApp):
    """The ASGI app over a loaded model's codec and batcher."""

    def __init__(
        self,
        codec: Codec,
        batcher: Batcher,
        stats: ReplicaStats,
        *,
        max_body_bytes: int = 16 * 1024 * 1024,
        capture: Capture | None = None,
    ) -> None:
        super().__init__(stats, max_body_bytes=max_body_bytes, capture=capture)
        self.codec = codec
        self.batcher = batcher

    async def _invocations(self, scope: Scope, receive: Receive, send: Send) -> int:
        content_type, accept, length = request_headers(scope)
        try:
            if length > self.max_body_bytes:
                raise self._too_large()
            body = await self._body(receive)
            status, media, answer = await self._answer(self._submit(content_type, body), accept)
        except NaiadError as exc:
            status, media, answer = exc.status_code, JSON, error_body(exc.code, exc.message)
        extra = ((b"retry-after", b"1"),) if status == 503 else ()
        await respond(send, status, answer, media, extra)
        return status

    async def _frames(self, receive: Receive, send: Send) -> None:
        """Every request of a frame is queued for the model before any is awaited, so they
        share batches as if they had come on their own connections at once."""
        started = time.perf_counter()
        try:
            limit = max(self.max_body_bytes, frames.MAX_BYTES)  # each request: its own limit
            requests = frames.decode_requests(await self._body(receive, limit))
        except (frames.FrameError, NaiadError) as exc:
            await respond(send, 400, error_body("invalid_frame", f"Not a valid frame: {exc}"))
            return
        stats = self.stats
        stats.in_flight += len(requests)
        try:
            queued: list[_Queued | NaiadError] = []
            for content_type, _, body in requests:
                try:
                    if len(body) > self.max_body_bytes:  # the frame's limit is not its own
                        raise self._too_large()
                    queued.append(self._submit(content_type, body))
                except NaiadError as exc:
                    queued.append(exc)
            answers = []
            for (_, accept, _), entry in zip(requests, queued, strict=True):
                if isinstance(entry, NaiadError):
                    answers.append((entry.status_code, JSON, error_body(entry.code, entry.message)))
                    continue
                try:
                    answers.append(await self._answer(entry, accept))
                except NaiadError as exc:
                    answers.append((exc.status_code, JSON, error_body(exc.code, exc.message)))
        finally:
            stats.in_flight -= len(requests)
        now = time.perf_counter()
        for status, _, _ in answers:
            stats.record_request(status, now - started, now)
        await respond(send, 200, frames.encode_answers(answers), frames.FRAMES)

    def _submit(self, content_type: bytes, body: bytes) -> _Queued:
        """Decode a request and queue it for the model (NaiadError: a 4xx or 503 answer)."""
        inputs = self.codec.decode(body, content_type)
        return inputs, self.batcher.submit(inputs)

    async def _answer(self, queued: _Queued, accept: bytes) -> frames.Answer:
        """A queued request's status, Content-Type and body, once the model has run it."""
        inputs, future = queued
        outputs = await future
        try:
            answer, media = self.codec.encode(outputs, NPY in accept)
        except TypeError:  # e.g. a complex tensor: the model's doing, not the client's
            message = f"The model's output ({outputs.dtype}) cannot be encoded as JSON or .npy."
            return 422, JSON, error_body(ModelError.code, message)
        if self.capture is not None:
            self.capture.offer(inputs, outputs)
        return 200, media, answer


async def _lifespan(receive: Receive, send: Send) -> None:
    """Nothing to start or stop per app (main.py owns the batcher); just say yes."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
