"""The proxy's keep-alive client against a loopback server that misbehaves on request:
connections are reused; a connection the server closed while idle is replaced without the
caller noticing; refusals and drops are Unreachable; slow answers time out. And its lanes
against a server that takes no frames (as a SageMaker handler's replica)."""

import asyncio

import pytest

from naiad.server.proxy.lanes import Lanes
from naiad.server.proxy.upstream import Unreachable, Upstream, UpstreamTimeout


class Server:
    """Answers by the request body: ok, chunked, drop, close, quiet-close, slow."""

    def __init__(self) -> None:
        self.connections = 0
        self.frames = 0  # POST /frames requests, each answered 404
        self.server: asyncio.Server | None = None

    async def start(self) -> tuple[str, int]:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        return "127.0.0.1", self.server.sockets[0].getsockname()[1]

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                body = await reader.readexactly(length)
                if head.startswith(b"POST /frames "):
                    self.frames += 1
                    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                    continue
                if body == b"drop":
                    return
                if body == b"slow":
                    await asyncio.sleep(1)
                if body == b"chunked":
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                        b"Content-Type: text/plain\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
                    )
                else:
                    close = b"Connection: close\r\n" if body == b"close" else b""
                    answer = b"echo:" + body
                    writer.write(
                        b"HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nRetry-After: 2\r\n"
                        + close
                        + b"Content-Length: %d\r\n\r\n" % len(answer)
                        + answer
                    )
                await writer.drain()
                if body in (b"close", b"quiet-close"):
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()


def test_keep_alive_reuse_and_a_quietly_closed_connection() -> None:
    async def main() -> None:
        server = Server()
        target = await server.start()
        upstream = Upstream(timeout_s=5)
        for _ in range(5):
            reply = await upstream.post(target, "/invocations", b"ok", {"content-type": "a/b"})
            assert (reply.status, reply.body) == (201, b"echo:ok")
            assert reply.headers["retry-after"] == "2"
        assert server.connections == 1
        chunked = await upstream.post(target, "/invocations", b"chunked", {})
        assert (chunked.status, chunked.body) == (200, b"abcde")
        assert (await upstream.post(target, "/", b"close", {})).body == b"echo:close"
        assert (await upstream.post(target, "/", b"quiet-close", {})).body == b"echo:quiet-close"
        await asyncio.sleep(0.05)
        connections = server.connections
        # The pooled connection was closed by the server: a new one, transparently.
        assert (await upstream.post(target, "/", b"ok", {})).body == b"echo:ok"
        assert server.connections == connections + 1
        with pytest.raises(Unreachable):
            await upstream.post(target, "/", b"drop", {})
        await upstream.aclose()
        await server.stop()

    asyncio.run(main())


def test_refused_and_slow() -> None:
    async def main() -> None:
        server = Server()
        target = await server.start()
        await server.stop()
        await asyncio.sleep(0.05)
        with pytest.raises(Unreachable):
            await Upstream().post(target, "/", b"ok", {})
        server = Server()
        target = await server.start()
        with pytest.raises(UpstreamTimeout):
            await Upstream(timeout_s=0.2).post(target, "/", b"slow", {})
        await server.stop()

    asyncio.run(main())


def test_a_replica_that_takes_no_frames_gets_requests_one_by_one() -> None:
    async def main() -> None:
        server = Server()
        target = await server.start()
        upstream = Upstream(timeout_s=5)
        lanes = Lanes(upstream)
        bodies = [b"ok%d" % i for i in range(5)]
        replies = await asyncio.gather(
            *(lanes.post(target, b, {"content-type": "a/b"}) for b in bodies)
        )
        assert [r.body for r in replies] == [b"echo:" + b for b in bodies]
        assert {r.status for r in replies} == {201}
        assert server.frames == 1  # asked once, then remembered
        assert (await lanes.post(target, b"ok", {})).body == b"echo:ok"
        assert server.frames == 1
        await upstream.aclose()
        await server.stop()

    asyncio.run(main())
