"""The proxy's client to its replicas: keep-alive HTTP/1.1 over asyncio streams.

The hop from the server to a replica is on every invocation's path, so it is kept as
cheap as the replica itself: one write per request, responses parsed by httptools (the
C parser uvicorn uses), idle connections kept per replica and reused. A general client
(httpx) spends several times the replica's own time per request here.

Failures are sorted for the router: ``Unreachable`` means the replica never answered
(refused, reset, closed before a response): the request may go to another replica;
``UpstreamTimeout`` means it took too long.
"""

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import httptools

IDLE_S = 4.0  # under uvicorn's 5 s keep-alive, so a replica rarely closes one we reuse
MAX_IDLE = 64  # idle connections kept per replica
READ_SIZE = 256 * 1024

Target = tuple[str, int]


class Unreachable(Exception):
    """The replica did not answer: the request can be sent to another one."""


class UpstreamTimeout(Exception):
    """The replica took longer than the timeout."""


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class _Response:
    """httptools' callbacks fill this in."""

    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] = field(default_factory=list)
    complete: bool = False
    keep_alive: bool = False
    parser: "httptools.HttpResponseParser | None" = None

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        # Asked here: once the parser has reset for the next message it always says no.
        assert self.parser is not None
        self.keep_alive = self.parser.should_keep_alive()
        self.complete = True


_Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class Upstream:
    def __init__(self, timeout_s: float = 60.0, connect_timeout_s: float = 2.0) -> None:
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._idle: dict[Target, list[tuple[float, _Conn]]] = {}

    def _take(self, target: Target) -> _Conn | None:
        idle = self._idle.get(target)
        now = time.monotonic()
        while idle:
            since, conn = idle.pop()
            if now - since < IDLE_S and not conn[0].at_eof() and not conn[1].is_closing():
                return conn
            conn[1].close()
        return None

    def _give_back(self, target: Target, conn: _Conn) -> None:
        idle = self._idle.setdefault(target, [])
        if len(idle) >= MAX_IDLE:
            conn[1].close()
            return
        idle.append((time.monotonic(), conn))

    async def _connect(self, target: Target) -> _Conn:
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                return await asyncio.open_connection(*target, limit=READ_SIZE)
        except (OSError, TimeoutError) as exc:
            raise Unreachable(f"connect: {exc.__class__.__name__}") from None

    async def post(self, target: Target, path: str, body: bytes, headers: dict[str, str]) -> Reply:
        """POST ``body`` to the replica at ``target``; its status, headers and body."""
        head = [f"POST {path} HTTP/1.1", f"Host: {target[0]}:{target[1]}"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        head.append(f"Content-Length: {len(body)}")
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body
        try:
            async with asyncio.timeout(self.timeout_s):
                conn = self._take(target)
                if conn is not None:
                    try:
                        return await self._exchange(target, conn, request)
                    except Unreachable:
                        pass  # the replica had closed that idle connection: use a new one
                return await self._exchange(target, await self._connect(target), request)
        except TimeoutError:
            raise UpstreamTimeout() from None

    async def _exchange(self, target: Target, conn: _Conn, request: bytes) -> Reply:
        reader, writer = conn
        response = _Response()
        parser = response.parser = httptools.HttpResponseParser(response)
        done = False
        try:
            writer.write(request)
            while not response.complete:
                data = await reader.read(READ_SIZE)
                if not data:
                    raise Unreachable("closed before answering")
                parser.feed_data(data)
            done = True
        except (OSError, httptools.HttpParserError) as exc:
            raise Unreachable(exc.__class__.__name__) from None
        finally:
            if done and response.keep_alive:
                self._give_back(target, conn)
            else:
                writer.close()
        return Reply(parser.get_status_code(), response.headers, b"".join(response.chunks))

    async def aclose(self) -> None:
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for _, (_, writer) in conns:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
