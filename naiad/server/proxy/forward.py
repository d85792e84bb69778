"""The generic proxy: any HTTP request or WebSocket to a process on a loopback port.

A browser application behind Naiad's login (JupyterLab) needs every method, uploads and
downloads that stream rather than sit in memory, and WebSockets. HTTP goes through
httpx's async client with streaming on both sides; WebSockets through the ``websockets``
package, one upstream connection per client connection, messages pumped both ways until
either side closes. Hop-by-hop headers stay on their hop; the rest pass as they are, the
``Host`` header included (servers check it against ``Origin``). An upstream that is not
there is a 502 with a sentence, one that takes too long a 504.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

import httpx
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.websockets import WebSocket, WebSocketDisconnect
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from naiad.server.deps import COOKIE
from naiad.server.errors import error_response

log = logging.getLogger("naiad.proxy")

Target = tuple[str, int]  # ("127.0.0.1", port)

# RFC 9110 7.6.1 and the headers a WebSocket handshake builds for itself.
_HOP_BY_HOP = {
    b"connection",
    b"keep-alive",
    b"proxy-authenticate",
    b"proxy-authorization",
    b"te",
    b"trailer",
    b"transfer-encoding",
    b"upgrade",
}
_HANDSHAKE = {b"host", b"sec-websocket-key", b"sec-websocket-version", b"sec-websocket-extensions"}
_HANDSHAKE |= {b"sec-websocket-protocol", b"sec-websocket-accept"}
_COOKIE = COOKIE.encode()


def _pass(headers: list[tuple[bytes, bytes]], drop: set[bytes]) -> list[tuple[bytes, bytes]]:
    return [(k, v) for k, v in headers if k.lower() not in drop]


def _upstream(headers: list[tuple[bytes, bytes]], drop: set[bytes]) -> list[tuple[bytes, bytes]]:
    """What goes upstream: never Naiad's own credentials (the bearer token, the console's
    session cookie), which would hand the admin token to the process behind the proxy."""
    kept = []
    for key, value in _pass(headers, drop | {b"authorization"}):
        if key.lower() == b"cookie":
            crumbs = [c for c in value.split(b";") if c.strip().split(b"=", 1)[0] != _COOKIE]
            if not crumbs:
                continue
            value = b";".join(crumbs).strip()
        kept.append((key, value))
    return kept


def _path(path: str, query: str) -> str:
    path = path if path.startswith("/") else f"/{path}"
    return f"{path}?{query}" if query else path


class Forwarder:
    """One keep-alive HTTP client shared by every forwarded request (opened on the loop)."""

    def __init__(self, timeout_s: float = 300.0, connect_timeout_s: float = 5.0) -> None:
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._client: httpx.AsyncClient | None = None

    def open(self) -> None:
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout_s, connect=self.connect_timeout_s),
            trust_env=False,
            follow_redirects=False,  # a redirect is the browser's to follow
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def http(
        self,
        request: Request,
        target: Target,
        path: str,
        name: str,
        extra: Sequence[tuple[bytes, bytes]] = (),
    ) -> Response:
        """Send ``request`` to ``path`` at ``target``; its answer streams back as it comes.
        ``name`` says in an error what was not reachable (e.g. "Notebook 'lab'"); ``extra``
        headers go upstream too (the process's own credentials, which the client never has)."""
        if self._client is None:
            self.open()  # on the loop that serves the request
        assert self._client is not None
        url = f"http://{target[0]}:{target[1]}{_path(path, request.url.query)}"
        headers = [*_upstream(request.headers.raw, _HOP_BY_HOP), *extra]
        has_body = "content-length" in request.headers or "transfer-encoding" in request.headers
        outgoing = self._client.build_request(
            request.method, url, headers=headers, content=request.stream() if has_body else None
        )
        try:
            reply = await self._client.send(outgoing, stream=True)
        except httpx.TimeoutException:
            message = f"{name} did not answer within {self.timeout_s:g}s."
            return error_response("timeout", message, 504)
        except httpx.TransportError as exc:
            log.info("forwarding to %s failed: %r", url, exc)
            return error_response(
                "bad_gateway",
                f"{name} is not answering on port {target[1]} (it is starting, restarting or "
                "stopped); retry shortly.",
                502,
            )
        response = StreamingResponse(_relay(reply), status_code=reply.status_code)
        response.raw_headers = _pass(reply.headers.raw, _HOP_BY_HOP)
        return response

    async def websocket(
        self,
        client: WebSocket,
        target: Target,
        path: str,
        name: str,
        extra: Sequence[tuple[bytes, bytes]] = (),
    ) -> None:
        """Open the same WebSocket upstream, then pump messages both ways until one closes."""
        url = f"ws://{target[0]}:{target[1]}{_path(path, client.url.query)}"
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in [*_upstream(client.headers.raw, _HOP_BY_HOP | _HANDSHAKE), *extra]
        ]
        subprotocols = client.scope.get("subprotocols") or None
        try:
            upstream = await connect(
                url,
                additional_headers=headers,
                subprotocols=subprotocols,
                open_timeout=self.connect_timeout_s,
                max_size=None,  # the upstream sets its own limits
                compression=None,
                proxy=None,
            )
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            log.info("opening WebSocket %s failed: %r", url, exc)
            message = f"{name} is not accepting WebSockets on port {target[1]}; retry shortly."
            if "websocket.http.response" in client.scope.get("extensions", {}):
                await client.send_denial_response(error_response("bad_gateway", message, 502))
            else:
                await client.close(code=1011, reason=message[:120])
            return
        async with upstream:
            await client.accept(subprotocol=upstream.subprotocol)
            await _pump(client, upstream)


async def _relay(reply: httpx.Response) -> AsyncIterator[bytes]:
    """The upstream's body as it arrives (still encoded); an upstream that dies mid-body
    ends it short, which the client sees as a cut connection."""
    try:
        async for chunk in reply.aiter_raw():
            yield chunk
    except httpx.TransportError as exc:
        log.info("upstream body cut: %r", exc)
    finally:
        await reply.aclose()


async def _pump(client: WebSocket, upstream: ClientConnection) -> None:
    async def downstream() -> None:
        with contextlib.suppress(ConnectionClosed):  # raised for a close code past 1001
            async for message in upstream:
                if isinstance(message, str):
                    await client.send_text(message)
                else:
                    await client.send_bytes(message)
        code = upstream.close_code or 1000
        with contextlib.suppress(RuntimeError):  # the client left first
            await client.close(code=code, reason=upstream.close_reason or "")

    async def upstream_bound() -> None:
        while True:
            message = await client.receive()
            if message["type"] == "websocket.disconnect":
                await upstream.close(code=message.get("code") or 1000)
                return
            data = message.get("text")
            await upstream.send(data if data is not None else message.get("bytes") or b"")

    tasks = [asyncio.create_task(downstream()), asyncio.create_task(upstream_bound())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            with contextlib.suppress(ConnectionClosed, WebSocketDisconnect, RuntimeError):
                task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
