"""The generic proxy between two real uvicorn servers on loopback: every method, a streamed
upload and download, a WebSocket echo, and an upstream that is not there."""

import asyncio
import contextlib
import hashlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from websockets.exceptions import ConnectionClosedError, InvalidStatus
from websockets.sync.client import connect

from naiad.server.proxy.forward import Forwarder, Target

METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """An ASGI app in uvicorn on a thread, on a free loopback port, until stopped."""

    def __init__(self, app: Starlette) -> None:
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "Served":
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def upstream_app(release: threading.Event) -> Starlette:
    async def echo(request: Request) -> Response:
        body = await request.body()
        return JSONResponse(
            {
                "method": request.method,
                "path": request.url.path,
                "query": request.url.query,
                "body": body.decode(),
                "host": request.headers.get("host"),
                "cookie": request.headers.get("cookie"),
            },
            headers={"x-upstream": "yes"},
        )

    async def upload(request: Request) -> Response:
        digest, size, chunks = hashlib.sha256(), 0, 0
        async for chunk in request.stream():
            digest.update(chunk)
            size += len(chunk)
            chunks += bool(chunk)
        return JSONResponse({"size": size, "sha256": digest.hexdigest(), "chunks": chunks})

    async def download(_: Request) -> Response:
        async def body() -> AsyncIterator[bytes]:
            yield b"first;"
            # The rest waits until the client has the first part: a proxy that buffered the
            # body would hold it back, and the client would get "late" instead.
            for _ in range(500):
                if release.is_set():
                    break
                await asyncio.sleep(0.01)
            else:
                yield b"late;"
            for i in range(100):
                yield b"%d;" % i

        return StreamingResponse(body(), media_type="text/plain")

    async def redirect(_: Request) -> Response:
        return Response(status_code=302, headers={"location": "/elsewhere"})

    async def echo_ws(ws: WebSocket) -> None:
        await ws.accept(subprotocol="echo.v1" if "echo.v1" in ws.scope["subprotocols"] else None)
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") == "bye":
                await ws.close(code=4001, reason="asked to")
                return
            if message.get("text") is not None:
                await ws.send_text("echo:" + message["text"])
            else:
                await ws.send_bytes(message["bytes"][::-1])

    return Starlette(
        routes=[
            Route("/echo/{rest:path}", echo, methods=METHODS),
            Route("/upload", upload, methods=["POST", "PUT"]),
            Route("/download", download),
            Route("/redirect", redirect),
            WebSocketRoute("/ws", echo_ws),
        ]
    )


def proxy_app(target: Target) -> Starlette:
    forwarder = Forwarder(timeout_s=10)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        forwarder.open()
        yield
        await forwarder.aclose()

    async def http(request: Request) -> Response:
        return await forwarder.http(request, target, request.path_params["rest"], "Upstream")

    async def ws(websocket: WebSocket) -> None:
        await forwarder.websocket(websocket, target, websocket.path_params["rest"], "Upstream")

    return Starlette(
        lifespan=lifespan,
        routes=[
            Route("/p/{rest:path}", http, methods=METHODS),
            WebSocketRoute("/p/{rest:path}", ws),
        ],
    )


@pytest.fixture(scope="module")
def release() -> threading.Event:
    return threading.Event()


@pytest.fixture(scope="module")
def proxy(release: threading.Event) -> Iterator[str]:
    with Served(upstream_app(release)) as up, Served(proxy_app(("127.0.0.1", up.port))) as front:
        yield f"127.0.0.1:{front.port}"


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH"])
def test_methods_paths_queries_and_headers_pass(proxy: str, method: str) -> None:
    body = b"" if method in ("GET", "DELETE") else b"payload"
    response = httpx.request(
        method,
        f"http://{proxy}/p/echo/a/b?x=1&y=two",
        content=body,
        headers={"cookie": "session=abc"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["x-upstream"] == "yes"
    assert response.json() == {
        "method": method,
        "path": "/echo/a/b",
        "query": "x=1&y=two",
        "body": body.decode(),
        "host": proxy,  # the Host the browser sent, for the upstream's origin checks
        "cookie": "session=abc",
    }


def test_naiads_own_credentials_never_reach_the_upstream(proxy: str) -> None:
    sent = httpx.get(
        f"http://{proxy}/p/echo/x",
        headers={
            "cookie": "naiad_token=secret; session=abc",
            "authorization": "Bearer secret",
        },
    )
    assert sent.json()["cookie"] == "session=abc"
    assert "secret" not in sent.text


def test_head_and_redirects_are_the_clients(proxy: str) -> None:
    assert httpx.head(f"http://{proxy}/p/echo/x").status_code == 200
    response = httpx.get(f"http://{proxy}/p/redirect")
    assert response.status_code == 302
    assert response.headers["location"] == "/elsewhere"


def test_a_streamed_upload_arrives_whole(proxy: str) -> None:
    parts = [bytes([i]) * 65536 for i in range(64)]  # 4 MiB, sent chunked
    response = httpx.post(f"http://{proxy}/p/upload", content=iter(parts), timeout=30)
    assert response.status_code == 200
    data = b"".join(parts)
    assert response.json()["size"] == len(data)
    assert response.json()["sha256"] == hashlib.sha256(data).hexdigest()
    assert response.json()["chunks"] > 1  # it streamed, not one buffered piece


def test_a_download_streams_before_the_upstream_finishes(
    proxy: str, release: threading.Event
) -> None:
    with httpx.stream("GET", f"http://{proxy}/p/download", timeout=30) as response:
        chunks = response.iter_raw()
        first = next(chunks)
        assert first.startswith(b"first;")
        release.set()
        rest = first + b"".join(chunks)
    assert b"late" not in rest
    assert rest.endswith(b"99;")


def test_websocket_echo_both_kinds_and_the_upstream_close(proxy: str) -> None:
    with connect(f"ws://{proxy}/p/ws", subprotocols=["echo.v1"]) as ws:
        assert ws.subprotocol == "echo.v1"
        ws.send("hello")
        assert ws.recv(timeout=5) == "echo:hello"
        ws.send(b"\x00\x01\x02")
        assert ws.recv(timeout=5) == b"\x02\x01\x00"
        ws.send("bye")
        with pytest.raises(ConnectionClosedError):
            ws.recv(timeout=5)
        assert ws.close_code == 4001


def test_an_upstream_that_is_down_is_a_502_with_a_sentence() -> None:
    with Served(proxy_app(("127.0.0.1", free_port()))) as front:
        response = httpx.post(f"http://127.0.0.1:{front.port}/p/anything", content=b"x")
        assert response.status_code == 502
        assert response.json()["error"] == "bad_gateway"
        assert "Upstream is not answering on port" in response.json()["message"]
        with pytest.raises(InvalidStatus) as refused:
            connect(f"ws://127.0.0.1:{front.port}/p/ws", open_timeout=5)
        assert refused.value.response.status_code == 502
        assert b"not accepting WebSockets" in refused.value.response.body
