"""One S3 request as an operation sees it (``Call``), and what it answers (``Reply``)."""

import asyncio
import secrets
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from email.utils import format_datetime
from typing import TypeVar

import anyio.to_thread
from starlette.types import Receive

from naiad.server.compat.awsjson import Caller
from naiad.server.compat.s3.body import ChunkSigner, Payload
from naiad.server.compat.s3.errors import S3Error, translate
from naiad.server.compat.s3.layout import ObjectInfo, Volume
from naiad.server.compat.s3.routing import Target
from naiad.server.compat.s3.xml import DECLARATION

T = TypeVar("T")
CHUNK = 1024 * 1024


@dataclass
class Reply:
    """An answer: a status, headers, and a body given whole or streamed."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    stream: AsyncGenerator[bytes, None] | None = None


def xml_reply(body: bytes, status: int = 200) -> Reply:
    return Reply(status, {"content-type": "application/xml"}, body)


def http_date(info: ObjectInfo) -> str:
    return format_datetime(info.stat.modified.replace(microsecond=0), usegmt=True)


@dataclass
class Call:
    """A verified S3 request: where it points, its headers (first value of each, by lower
    case name), who signed it, and its body, not yet read."""

    volume: Volume
    target: Target
    headers: dict[str, str]
    caller: Caller
    payload_hash: str
    receive: Receive
    max_object_bytes: int
    limiter: anyio.CapacityLimiter
    signer: ChunkSigner | None = None  # for a body signed chunk by chunk
    request_id: str = field(default_factory=lambda: secrets.token_hex(8).upper())
    body: Payload | None = None  # the body, once an operation has begun to read it

    @property
    def bucket(self) -> str:
        return self.target.bucket

    @property
    def key(self) -> str:
        return self.target.key

    @property
    def query(self) -> dict[str, str]:
        return self.target.query

    async def run(self, function: Callable[..., T], *args: object) -> T:
        """Run file work in a worker thread, off the event loop. Transfers have threads
        of their own (``limiter``), so a hundred uploads leave the API's pool free."""
        return await anyio.to_thread.run_sync(function, *args, limiter=self.limiter)

    def payload(self, limit: int | None = None) -> Payload:
        self.body = Payload(
            self.receive,
            self.headers,
            self.payload_hash,
            self.max_object_bytes if limit is None else limit,
            self.signer,
        )
        return self.body

    @property
    def body_unread(self) -> bool:
        """Whether the client sent (or will send) body bytes the answer leaves unread: the
        connection must then close, or they would be read as the next request."""
        sent = self.headers.get("content-length", "0") != "0" or "transfer-encoding" in self.headers
        return sent and (self.body is None or not self.body.ended)

    async def small_body(self, limit: int) -> bytes:
        """A whole XML request body (read and checked), up to ``limit`` bytes."""
        return await self.payload(limit).read_all()

    def int_query(self, name: str, default: int, low: int, high: int) -> int:
        value = self.query.get(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            number = low - 1
        if not low <= number <= high:
            raise S3Error(
                "InvalidArgument",
                f"{name} must be a whole number from {low} to {high}, not {value!r}.",
                400,
            )
        return number


HEARTBEAT_S = 10.0


def slow_xml(call: Call, work: Callable[[], bytes]) -> Reply:
    """A 200 whose XML element ``work`` (run in a worker thread) writes once it is done, as
    S3 answers a long copy: a space every few seconds meanwhile keeps the client waiting,
    and an error met on the way ends the 200 as an ``<Error>``, which botocore reads as one.
    """

    async def body() -> AsyncGenerator[bytes, None]:
        yield DECLARATION
        task = asyncio.ensure_future(call.run(work))
        try:
            while not task.done():
                done, _ = await asyncio.wait({task}, timeout=HEARTBEAT_S)
                if not done:
                    yield b" "
            yield task.result()
        except Exception as exc:
            yield translate(exc, call.target.resource).element(call.request_id)

    return Reply(200, {"content-type": "application/xml"}, stream=body())
