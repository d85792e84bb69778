"""Frames: many invocations in one message between the server's proxy and a replica.

The replica batches requests for its model, so the hop to it must deliver them together:
one HTTP request a client sends becoming one HTTP request to the replica costs both
processes a full parse per request, and the proxy, slower than its clients, then hands the
replica one request at a time, so its batches shrink to a row or two. A frame carries every
request that waited at the proxy for one replica (``POST /frames``, Content-Type
``FRAMES``), and its answer carries their answers, in order.

Layout, little-endian: a u32 count, then per request ``u16 len, Content-Type, u16 len,
Accept, u32 len, body``; per answer ``u16 status, u16 len, Content-Type, u32 len, body``.
"""

import struct

FRAMES = b"application/x-naiad-frames"
PATH = "/frames"
MAX_BYTES = 4 * 1024 * 1024  # a replica takes frames this large whatever its body limit

_COUNT = struct.Struct("<I")
_SHORT = struct.Struct("<H")
_LONG = struct.Struct("<I")
_STATUS = struct.Struct("<HH")  # status, then the length of the Content-Type

Request = tuple[bytes, bytes, bytes]  # Content-Type, Accept, body
Answer = tuple[int, bytes, bytes]  # status, Content-Type, body


class FrameError(ValueError):
    """A frame that does not follow the layout (truncated, or a length past its end)."""


def encode_requests(requests: list[Request]) -> bytes:
    parts = [_COUNT.pack(len(requests))]
    for content_type, accept, body in requests:
        parts += (
            _SHORT.pack(len(content_type)),
            content_type,
            _SHORT.pack(len(accept)),
            accept,
            _LONG.pack(len(body)),
            body,
        )
    return b"".join(parts)


def encode_answers(answers: list[Answer]) -> bytes:
    parts = [_COUNT.pack(len(answers))]
    for status, content_type, body in answers:
        parts += (
            _STATUS.pack(status, len(content_type)),
            content_type,
            _LONG.pack(len(body)),
            body,
        )
    return b"".join(parts)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, size: int) -> bytes:
        end = self.at + size
        if end > len(self.data):
            raise FrameError(f"the frame ends at byte {len(self.data)}, before byte {end}")
        chunk = self.data[self.at : end]
        self.at = end
        return chunk

    def unpack(self, layout: struct.Struct) -> tuple[int, ...]:
        return layout.unpack(self.take(layout.size))

    def count(self, smallest: int) -> int:
        """The leading count, checked against what the bytes can hold."""
        (count,) = self.unpack(_COUNT)
        if count * smallest > len(self.data) - self.at:
            raise FrameError(f"a count of {count} does not fit in {len(self.data)} bytes")
        return count

    def done(self) -> None:
        if self.at != len(self.data):
            raise FrameError(f"{len(self.data) - self.at} bytes follow the last entry")


def decode_requests(data: bytes) -> list[Request]:
    reader = _Reader(data)
    requests = []
    for _ in range(reader.count(8)):
        content_type = reader.take(reader.unpack(_SHORT)[0])
        accept = reader.take(reader.unpack(_SHORT)[0])
        requests.append((content_type, accept, reader.take(reader.unpack(_LONG)[0])))
    reader.done()
    return requests


def decode_answers(data: bytes) -> list[Answer]:
    reader = _Reader(data)
    answers = []
    for _ in range(reader.count(8)):
        status, size = reader.unpack(_STATUS)
        content_type = reader.take(size)
        answers.append((status, content_type, reader.take(reader.unpack(_LONG)[0])))
    reader.done()
    return answers
