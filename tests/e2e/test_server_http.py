"""The server's HTTP protocol on a real socket: invocations answered from the bytes, and
every request it does not take plainly (pipelined, split, chunked, another route on the
same connection) still answered by uvicorn as before, in order, on the same connection."""

import json
import socket

import pytest

import naiad
from naiad.server.http import parse
from naiad.testing.endpoints import scale_model
from naiad.testing.live import LiveServer

ROW = b'{"inputs": [[1.0, 2.0, 3.0, 4.0]]}'
DOUBLED = [[2.0, 4.0, 6.0, 8.0]]


@pytest.fixture(scope="module")
def served(server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> LiveServer:
    """The module's server with endpoint ``e``: one replica answering ``x * 2``."""
    client = naiad.Client(url=server.url, token=server.token)
    model = scale_model(tmp_path_factory.mktemp("http") / "model", 2.0)
    client.models.register("scale", path=model)
    client.endpoints.deploy("e", model="scale:1", wait=True, timeout=120)
    return server


def invocation(server: LiveServer, body: bytes = ROW, extra: str = "", name: str = "e") -> bytes:
    return (
        f"POST /endpoints/{name}/invocations HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: application/json\r\nAuthorization: Bearer {server.token}\r\n"
        f"{extra}Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


class Connection:
    """A raw keep-alive connection that reads answers by their Content-Length or chunks."""

    def __init__(self, server: LiveServer) -> None:
        self.sock = socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1])))
        self.sock.settimeout(30)
        self.buffer = b""

    def send(self, *parts: bytes) -> None:
        for part in parts:
            self.sock.sendall(part)

    def answer(self) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buffer:
            self._read()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:])
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                while b"\r\n" not in self.buffer:
                    self._read()
                size_line, _, self.buffer = self.buffer.partition(b"\r\n")
                size = int(size_line, 16)
                while len(self.buffer) < size + 2:
                    self._read()
                body, self.buffer = body + self.buffer[:size], self.buffer[size + 2 :]
                if size == 0:
                    return int(lines[0].split()[1]), headers, body
        length = int(headers["content-length"])
        while len(self.buffer) < length:
            self._read()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(lines[0].split()[1]), headers, body

    def closed(self) -> bool:
        return self.sock.recv(1) == b""

    def _read(self) -> None:
        data = self.sock.recv(65536)
        assert data, "the server closed the connection"
        self.buffer += data

    def close(self) -> None:
        self.sock.close()


def predictions(body: bytes) -> object:
    return json.loads(body)["predictions"]


def test_plain_invocations_share_a_connection_with_other_routes(served: LiveServer) -> None:
    conn = Connection(served)
    for _ in range(3):
        conn.send(invocation(served))
        status, headers, body = conn.answer()
        assert status == 200 and headers["x-naiad-variant"] == "scale-v1"
        assert predictions(body) == DOUBLED
    # Another route on the same connection: uvicorn answers it, and what follows.
    conn.send(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert conn.answer()[0] == 200
    conn.send(invocation(served))
    assert predictions(conn.answer()[2]) == DOUBLED
    conn.close()


def test_pipelined_split_and_chunked_requests_are_answered_in_order(served: LiveServer) -> None:
    conn = Connection(served)
    conn.send(invocation(served) + invocation(served, b'{"inputs": [[0, 0, 0, 1]]}'))
    assert predictions(conn.answer()[2]) == DOUBLED
    assert predictions(conn.answer()[2]) == [[0.0, 0.0, 0.0, 2.0]]
    conn.close()

    split = invocation(served)
    conn = Connection(served)
    conn.send(split[:40])
    conn.send(split[40:])
    assert predictions(conn.answer()[2]) == DOUBLED
    conn.close()

    conn = Connection(served)
    head = invocation(served, b"").split(b"Content-Length")[0]
    conn.send(
        head + b"Transfer-Encoding: chunked\r\n\r\n%x\r\n" % len(ROW) + ROW + b"\r\n0\r\n\r\n"
    )
    assert predictions(conn.answer()[2]) == DOUBLED
    conn.close()


def test_refusals_and_connection_close(served: LiveServer) -> None:
    conn = Connection(served)
    conn.send(invocation(served, name="missing"))
    status, _, body = conn.answer()
    assert status == 404 and "No endpoint named 'missing'" in json.loads(body)["message"]
    conn.send(invocation(served, b"[1"))
    status, _, body = conn.answer()
    assert status == 400 and json.loads(body)["error"] == "invalid_input"
    wrong = invocation(served).replace(served.token.encode(), b"wrong")
    conn.send(wrong)
    assert conn.answer()[0] == 401
    conn.close()

    conn = Connection(served)
    conn.send(invocation(served, extra="Connection: close\r\n"))
    status, headers, _ = conn.answer()
    assert status == 200 and headers["connection"] == "close"
    assert conn.closed()
    conn.close()


class Door:
    max_body_bytes = 1024

    def admits(self, authorization: bytes | None, query: bytes) -> bool:
        return authorization == b"Bearer t"


@pytest.mark.parametrize(
    ("change", "taken"),
    [
        (lambda r: r, True),
        (lambda r: r.replace(b"HTTP/1.1", b"HTTP/1.0"), False),
        (lambda r: r.replace(b"Host: x", b"Host: x\r\nHost: y"), False),  # seen twice
        (lambda r: r.replace(b"Host: x", b"Host: x\nX: y"), False),  # a bare LF
        (lambda r: r.replace(b"Host: x", b"Host: x\rX: y"), False),  # a bare CR
        (lambda r: r.replace(b"Host: x", b" Host: x"), False),  # a folded line
        (lambda r: r.replace(b"Host: x", b"Expect: 100-continue"), False),
        (lambda r: r.replace(b"/e/", b"/%65/"), False),  # percent-encoded: uvicorn decodes
        (lambda r: r.replace(b"invocations", b"invocations?x=1"), False),
        (lambda r: r.replace(b"Bearer t", b"Bearer u"), False),  # the door does not admit it
        (lambda r: r + b"x", False),  # more than Content-Length: pipelined or smuggled
        (lambda r: r[:-1], False),  # the body is still arriving
        (lambda r: r.replace(b"Host: x", b"Connection: upgrade"), False),
    ],
)
def test_only_a_plain_complete_invocation_is_taken_from_the_bytes(change, taken) -> None:  # type: ignore[no-untyped-def]
    request = (
        b"POST /endpoints/e/invocations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n"
        b"Content-Type: application/json\r\nContent-Length: 3\r\n\r\n[1]"
    )
    parsed = parse(change(request), Door())  # type: ignore[arg-type]
    assert (parsed is not None) == taken
    if taken:
        assert parsed == ("e", {"content-type": "application/json"}, b"[1]", False)
