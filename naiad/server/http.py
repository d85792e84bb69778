"""The server's HTTP protocol: uvicorn's, with a script's invocations answered from the bytes.

An invocation is the one request the server answers thousands of times a second, and
uvicorn spends more on each than the forward itself: a parser callback per header, an
ASGI scope, a task, two message round trips and two socket writes for the answer.
``InvocationProtocol`` looks at what arrives on a connection first: a read that holds
exactly one complete, plainly formed ``POST /endpoints/NAME/invocations`` with the token
is answered by ``InvocationDoor.reply`` and written back in one write. Anything else (any
other request, a body split over reads, chunked bodies, ``Expect``, a header seen twice,
a bare CR or LF, HTTP/1.0) goes to uvicorn's parser unchanged, and the connection stays
with uvicorn from then on, so the two parsers never disagree about where a request ends.
"""

import re
from http import HTTPStatus
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from naiad.server.routes.invocations import FORWARDED_RAW, InvocationDoor

_NAME = re.compile(rb"/endpoints/([A-Za-z0-9._~-]{1,128})/invocations")
_REFUSED = frozenset({b"transfer-encoding", b"expect", b"upgrade", b"te", b"trailer"})
_STATUS = {s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in HTTPStatus}

Parsed = tuple[str, dict[str, str], bytes, bool]  # endpoint, forwarded headers, body, close


class InvocationProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._door = _door_of(self.app)
        self._uvicorn = self._door is None  # once true, every byte goes to uvicorn's parser
        self._busy = False  # an answer is on its way: what arrives meanwhile waits
        self._held: list[bytes] = []
        self._close = False

    def data_received(self, data: bytes) -> None:
        if self._uvicorn:
            return super().data_received(data)
        if self._busy:
            self._held.append(data)
            self.flow.pause_reading()
            return
        assert self._door is not None
        parsed = parse(data, self._door)
        if parsed is None:
            self._uvicorn = True
            return super().data_received(data)
        self._unset_keepalive_if_required()
        self._busy = True
        task = self.loop.create_task(self._answer(parsed))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    async def _answer(self, parsed: Parsed) -> None:
        name, headers, body, close = parsed
        assert self._door is not None
        status, fields, answer = await self._door.reply(name, headers, body)
        if self.transport.is_closing():
            return
        head = [_STATUS.get(status) or b"HTTP/1.1 %d Status\r\n" % status]
        for key, value in fields:
            head += (key, b": ", value, b"\r\n")
        close = close or self._close
        if close:
            head.append(b"connection: close\r\n")
        head += (b"\r\n", answer)
        self.transport.write(b"".join(head))
        self.server_state.total_requests += 1
        self._busy = False
        if close:
            self.transport.close()
            return
        held, self._held = self._held, []
        self.flow.resume_reading()
        if held:
            self.data_received(b"".join(held))
        else:
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    def shutdown(self) -> None:
        """A graceful stop: close now when idle, else once the answer is written."""
        if self._busy:
            self._close = True
        else:
            super().shutdown()


def parse(data: bytes, door: InvocationDoor) -> Parsed | None:
    """The invocation ``data`` holds, if it is exactly one the door admits and nothing
    about it needs a general parser; else None."""
    end = data.find(b"\r\n\r\n")
    if end < 0 or not data.startswith(b"POST /endpoints/"):
        return None
    head = data[:end]
    lines = head.split(b"\r\n")
    request = lines[0].split(b" ")
    if len(request) != 3 or request[2] != b"HTTP/1.1":
        return None
    match = _NAME.fullmatch(request[1])
    breaks = len(lines) - 1  # a bare CR or LF would make one of the counts larger
    if match is None or head.count(b"\r") != breaks or head.count(b"\n") != breaks:
        return None
    length = -1
    authorization = None
    close = False
    seen: set[bytes] = set()
    headers: dict[str, str] = {}
    for line in lines[1:]:
        key, colon, value = line.partition(b":")
        key = key.lower()
        if not colon or not key or key != key.strip() or key in seen or key in _REFUSED:
            return None
        seen.add(key)
        value = value.strip(b" \t")
        if key == b"content-length":
            if not value.isdigit():
                return None
            length = int(value)
        elif key == b"authorization":
            authorization = value
        elif key == b"connection":
            close = value.lower() == b"close"
            if not close and value.lower() != b"keep-alive":
                return None
        elif key in FORWARDED_RAW:
            headers[key.decode()] = value.decode("latin-1")
    body = data[end + 4 :]
    if length != len(body) or length > door.max_body_bytes:
        return None
    if not door.admits(authorization, b""):
        return None
    return match.group(1).decode(), headers, body, close


def _door_of(app: Any) -> InvocationDoor | None:
    """The door of the Naiad app under uvicorn's wrappers (its proxy-headers middleware)."""
    for _ in range(8):
        door = getattr(app, "door", None)
        if isinstance(door, InvocationDoor):
            return door
        app = getattr(app, "app", None)
    return None
