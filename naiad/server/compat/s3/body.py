"""A request body as it streams in: decoded when botocore frames it (``aws-chunked``),
checked against every digest the request states, and never held whole.

Over http:// botocore signs the body's SHA-256 (``x-amz-content-sha256``) and states a
CRC32 in ``x-amz-checksum-crc32``; over https:// it sends ``aws-chunked`` framing with
``STREAMING-UNSIGNED-PAYLOAD-TRAILER`` and the CRC32 in a trailer. Other SDKs sign each
chunk (``STREAMING-AWS4-HMAC-SHA256-PAYLOAD``). Every stated digest is checked when the
body ends, before the caller commits what it wrote, so a body that fails one is not kept.
"""

import base64
import binascii
import hashlib
import hmac
import io
import re
import zlib
from collections.abc import Callable
from typing import Any, BinaryIO, Protocol

import anyio.from_thread
from starlette.types import Receive

from naiad.server.compat.s3.errors import S3Error

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_HEX64 = re.compile(r"[0-9a-f]{64}")
_CHUNK_HEADER = re.compile(rb"([0-9a-fA-F]{1,16})(?:;chunk-signature=([0-9a-f]{64}))?")
_MAX_LINE = 4096
_MAX_TRAILER = 16 * 1024


class _Digest(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def digest(self) -> bytes: ...


class _Crc32:
    def __init__(self) -> None:
        self.value = 0

    def update(self, data: bytes) -> None:
        self.value = zlib.crc32(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(4, "big")


ALGORITHMS = ("crc32", "crc32c", "crc64nvme", "sha1", "sha256")
# The checksums Naiad verifies; the others are taken as stated.
CHECKSUMS: dict[str, Callable[[], _Digest]] = {
    "crc32": _Crc32,
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
}


def _bad_digest(message: str) -> S3Error:
    return S3Error("BadDigest", message, 400)


class ChunkSigner:
    """The signatures of ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD``: each chunk's is an HMAC
    over the previous one (the request's own first) and the chunk's SHA-256."""

    def __init__(self, key: bytes, amz_date: str, scope: str, seed: str) -> None:
        self.key, self.amz_date, self.scope, self.previous = key, amz_date, scope, seed
        self.hash = hashlib.sha256()

    def _check(self, kind: str, digest: str, claimed: str) -> None:
        to_sign = "\n".join([kind, self.amz_date, self.scope, self.previous, digest])
        expected = hmac.new(self.key, to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, claimed):
            raise S3Error(
                "SignatureDoesNotMatch",
                "A chunk's signature does not match the chunk: the body was changed on its "
                "way, or signed with another key.",
                403,
            )
        self.previous = claimed

    def chunk(self, claimed: str) -> None:
        """Check the chunk just read (``update`` was given its bytes)."""
        digest = self.hash.hexdigest()
        self._check("AWS4-HMAC-SHA256-PAYLOAD", f"{EMPTY_SHA256}\n{digest}", claimed)
        self.hash = hashlib.sha256()

    def trailer(self, text: bytes, claimed: str) -> None:
        self._check("AWS4-HMAC-SHA256-TRAILER", hashlib.sha256(text).hexdigest(), claimed)


class AwsChunked:
    """Decodes ``aws-chunked`` framing fed in pieces of any size:
    ``hex-size[;chunk-signature=...]\\r\\n data \\r\\n ... 0\\r\\n trailers \\r\\n``."""

    def __init__(self, signer: ChunkSigner | None = None) -> None:
        self.signer = signer
        self.buffer = bytearray()
        self.state = "size"
        self.left = 0
        self.signature = ""
        self.trailers: dict[str, str] = {}
        self.trailer_text = b""
        self.done = False

    @staticmethod
    def _broken(what: str) -> S3Error:
        return S3Error(
            "InvalidRequest",
            f"The aws-chunked body is malformed: {what}. Send the body as the SDK frames it.",
            400,
        )

    def _line(self, limit: int) -> bytes | None:
        end = self.buffer.find(b"\r\n")
        if end < 0:
            if len(self.buffer) > limit:
                raise self._broken("a chunk header or trailer line is too long")
            return None
        line = bytes(self.buffer[:end])
        del self.buffer[: end + 2]
        return line

    def feed(self, raw: bytes) -> bytes:
        """The payload bytes ``raw`` completes; framing is kept until it is whole."""
        self.buffer += raw
        out = bytearray()
        while not self.done:
            if self.state == "size":
                line = self._line(_MAX_LINE)
                if line is None:
                    break
                match = _CHUNK_HEADER.fullmatch(line)
                if match is None:
                    raise self._broken(f"{line[:40]!r} is not a chunk header")
                self.left = int(match[1], 16)
                self.signature = (match[2] or b"").decode()
                if self.signer is not None and not self.signature:
                    raise self._broken("a chunk carries no chunk-signature")
                if self.left == 0:
                    if self.signer is not None:
                        self.signer.chunk(self.signature)
                    self.state = "trailer"
                else:
                    self.state = "data"
            elif self.state == "data":
                take = min(self.left, len(self.buffer))
                if take == 0:
                    break
                piece = bytes(self.buffer[:take])
                del self.buffer[:take]
                out += piece
                if self.signer is not None:
                    self.signer.hash.update(piece)
                self.left -= take
                if self.left == 0:
                    self.state = "crlf"
            elif self.state == "crlf":
                if len(self.buffer) < 2:
                    break
                if self.buffer[:2] != b"\r\n":
                    raise self._broken("a chunk is longer than its header says")
                del self.buffer[:2]
                if self.signer is not None:
                    self.signer.chunk(self.signature)
                self.state = "size"
            else:
                line = self._line(_MAX_TRAILER)
                if line is None:
                    break
                self._trailer(line)
        return bytes(out)

    def _trailer(self, line: bytes) -> None:
        if not line:
            self.done = True
            return
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise self._broken(f"the trailer {line[:40]!r} is not 'name:value'")
        name, value = name.strip().lower(), value.strip()
        if name == "x-amz-trailer-signature":
            if self.signer is not None:
                self.signer.trailer(self.trailer_text, value)
            return
        if len(self.trailer_text) > _MAX_TRAILER:
            raise self._broken("the trailers are too long")
        self.trailers[name] = value
        self.trailer_text += f"{name}:{value}\n".encode()


class Payload:
    """The body of one request, read once: whole (``read_all``, for XML documents) or as a
    file a worker thread reads (``reader``, for objects and parts)."""

    def __init__(
        self,
        receive: Receive,
        headers: dict[str, str],
        payload_hash: str,
        limit: int,
        signer: ChunkSigner | None = None,
    ) -> None:
        self.receive, self.limit = receive, limit
        self.stated_sha256 = payload_hash if _HEX64.fullmatch(payload_hash) else None
        self.sha256 = hashlib.sha256() if self.stated_sha256 else None
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.stated_md5 = _content_md5(headers.get("content-md5"))
        chunked = "aws-chunked" in headers.get("content-encoding", "") or (
            payload_hash.startswith("STREAMING-")
        )
        self.decoder = AwsChunked(signer) if chunked else None
        self.declared = _declared_length(headers, chunked)
        if self.declared is not None and self.declared > limit:
            raise too_large(limit)
        self.checksum_name, self.checksum, self.stated_checksum = _checksum(headers)
        self.size = 0
        self.ended = False

    async def next_raw(self, at_least: int = 1) -> bytes:
        """The next piece of the body as sent, ``at_least`` bytes of it unless it ends
        first (fewer trips from a worker thread to the event loop); b"" once it ended."""
        pieces: list[bytes] = []
        size = 0
        while not self.ended and size < at_least:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise S3Error("IncompleteBody", "The client went away before the body ended.", 400)
            if not message.get("more_body", False):
                self.ended = True
            piece = message.get("body", b"")
            pieces.append(piece)
            size += len(piece)
        return b"".join(pieces)

    def take(self, raw: bytes) -> bytes:
        """Decode and account for a piece of the body; the payload bytes it holds."""
        if self.sha256 is not None:
            self.sha256.update(raw)
        data = self.decoder.feed(raw) if self.decoder is not None else raw
        self.size += len(data)
        if self.size > self.limit:
            raise too_large(self.limit)
        self.md5.update(data)
        if self.checksum is not None:
            self.checksum.update(data)
        return data

    def finish(self) -> None:
        """Check the whole body against everything the request states about it."""
        if self.decoder is not None and not self.decoder.done:
            raise S3Error("IncompleteBody", "The aws-chunked body ended before its last chunk.")
        if self.declared is not None and self.size != self.declared:
            raise S3Error(
                "IncompleteBody",
                f"The body holds {self.size} bytes, not the {self.declared} its headers state.",
            )
        if self.sha256 is not None and self.sha256.hexdigest() != self.stated_sha256:
            raise S3Error(
                "XAmzContentSHA256Mismatch",
                "The body's SHA-256 is not the x-amz-content-sha256 the request states.",
            )
        if self.stated_md5 is not None and self.md5.digest() != self.stated_md5:
            raise _bad_digest("The Content-MD5 you specified did not match what we received.")
        stated = self.stated_checksum
        if stated is None and self.decoder is not None and self.checksum_name:
            stated = self.decoder.trailers.get(f"x-amz-checksum-{self.checksum_name}")
        computed = base64.b64encode(self.checksum.digest()).decode() if self.checksum else None
        if computed is not None and stated is not None and computed != stated:
            raise _bad_digest(
                f"The {self.checksum_name.upper()} checksum you specified did not match "
                "what we received."
            )

    @property
    def etag(self) -> str:
        return f'"{self.md5.hexdigest()}"'

    async def read_all(self) -> bytes:
        """The whole (small) body, checked."""
        parts: list[bytes] = []
        while not self.ended:
            parts.append(self.take(await self.next_raw()))
        self.finish()
        return b"".join(parts)

    def reader(self) -> BinaryIO:
        """A file over the body for a worker thread: each read waits for the event loop to
        receive more, and the read that reaches the end raises if a check fails."""
        return io.BufferedReader(_Pull(self), buffer_size=1024 * 1024)


class _Pull(io.RawIOBase):
    GATHER = 1024 * 1024  # bytes fetched from the event loop per trip

    def __init__(self, payload: Payload) -> None:
        self.payload = payload
        self.pending = memoryview(b"")
        self.finished = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.pending and not self.finished:
            raw = anyio.from_thread.run(self.payload.next_raw, self.GATHER)
            self.pending = memoryview(self.payload.take(raw))
            if self.payload.ended:
                self.payload.finish()
                self.finished = True
        size = min(len(buffer), len(self.pending))
        buffer[:size] = self.pending[:size]
        self.pending = self.pending[size:]
        return size


def too_large(limit: int) -> S3Error:
    return S3Error(
        "EntityTooLarge",
        f"The body is over {limit} bytes, the most one request may upload here (the server's "
        "NAIAD_MAX_ARTIFACT_BYTES); upload larger objects in parts (upload_file does).",
        400,
    )


def _content_md5(value: str | None) -> bytes | None:
    if value is None:
        return None
    try:
        digest = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != 16:
        raise S3Error("InvalidDigest", "The Content-MD5 you specified is not valid.", 400)
    return digest


def _declared_length(headers: dict[str, str], chunked: bool) -> int | None:
    name = "x-amz-decoded-content-length" if chunked else "content-length"
    value = headers.get(name)
    if value is None:
        return None
    if not value.isdigit():
        raise S3Error("InvalidArgument", f"The {name} header is not a number.", 400)
    return int(value)


def _checksum(headers: dict[str, str]) -> tuple[str, _Digest | None, str | None]:
    """(algorithm, digest to compute, value stated in a header) of ``x-amz-checksum-*``,
    stated now or announced for the trailer (``x-amz-trailer``)."""
    for algorithm in ALGORITHMS:
        value = headers.get(f"x-amz-checksum-{algorithm}")
        if value is not None:
            make = CHECKSUMS.get(algorithm)
            return algorithm, make() if make else None, value
    trailer = headers.get("x-amz-trailer", "").strip().lower()
    algorithm = trailer.removeprefix("x-amz-checksum-")
    if trailer.startswith("x-amz-checksum-") and algorithm in ALGORITHMS:
        make = CHECKSUMS.get(algorithm)
        return algorithm, make() if make else None, None
    return "", None, None
