"""Requests to one replica leave together, in frames (``naiad.core.frames``).

Each replica has a lane: requests for it wait there while ``IN_FLIGHT`` frames are on their
way, and the next frame carries all of them. Under light load a request leaves at once,
alone, on the next pass of the event loop; under heavy load the frames grow with the
queue, so the replica gets its requests together and its batches stay full, and the proxy
pays one upstream exchange per frame, not per request. One frame at a time measured best
(docs/benchmarks.md): with two, each carries half the waiting requests, so the replica's
batches halve, for an overlap that two cores cannot use.

A replica that does not take frames (a SageMaker handler or container answers 404) is
remembered and sent its requests one by one, as are requests too large to share a frame
(a body over ``ALONE_BYTES``, or media types over ``MAX_MEDIA_BYTES``) and those carrying
SageMaker custom attributes (only a single request has a place for them).
"""

import asyncio
from dataclasses import dataclass, field

from naiad.core import frames
from naiad.server.proxy.upstream import Reply, Target, Unreachable, Upstream

IN_FLIGHT = 1  # frames on their way to one replica at once
MAX_FRAME_BYTES = 1024 * 1024  # request bodies per frame (a replica takes 16 MiB bodies)
ALONE_BYTES = 256 * 1024  # a body this large travels on its own
MAX_MEDIA_BYTES = 4096  # Content-Type and Accept; a frame's fields hold 64 KiB each
MAX_LANES = 256
_ALONE_HEADER = "x-amzn-sagemaker-custom-attributes"
_HEADERS = {"content-type": frames.FRAMES.decode()}


class _NotFramed(Exception):
    """The replica answered the frame with 404: send this request by itself."""


@dataclass
class _Lane:
    waiting: list[tuple[frames.Request, asyncio.Future[Reply]]] = field(default_factory=list)
    in_flight: int = 0
    flush_due: bool = False
    framed: bool = True  # until the replica says otherwise


class Lanes:
    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self._lanes: dict[Target, _Lane] = {}

    async def post(self, target: Target, body: bytes, headers: dict[str, str]) -> Reply:
        """The replica's answer to one invocation (raises what ``Upstream.post`` raises)."""
        lane = self._lanes.get(target)
        if lane is None:
            lane = self._lanes[target] = self._new_lane()
        content_type = headers.get("content-type", "").encode("latin-1")
        accept = headers.get("accept", "").encode("latin-1")
        if (
            not lane.framed
            or len(body) > ALONE_BYTES
            or _ALONE_HEADER in headers
            or len(content_type) + len(accept) > MAX_MEDIA_BYTES
        ):
            return await self.upstream.post(target, "/invocations", body, headers)
        request = (content_type, accept, body)
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        lane.waiting.append((request, future))
        if not lane.flush_due and lane.in_flight < IN_FLIGHT:
            lane.flush_due = True  # on the next pass, so requests read in this one join it
            asyncio.get_running_loop().call_soon(self._flush, target, lane)
        try:
            return await future
        except _NotFramed:
            return await self.upstream.post(target, "/invocations", body, headers)

    def _new_lane(self) -> _Lane:
        """A lane, dropping idle ones first when there are many: replicas come and go (a
        port reused later starts framed again, and a 404 would only send it back to
        single requests)."""
        if len(self._lanes) >= MAX_LANES:
            self._lanes = {t: lane for t, lane in self._lanes.items() if lane.in_flight}
        return _Lane()

    def _flush(self, target: Target, lane: _Lane) -> None:
        lane.flush_due = False
        if not lane.waiting or lane.in_flight >= IN_FLIGHT:
            return
        size = 0
        take = 0
        for (_, _, body), _ in lane.waiting:
            size += len(body)
            if take and size > MAX_FRAME_BYTES:
                break
            take += 1
        batch, lane.waiting = lane.waiting[:take], lane.waiting[take:]
        lane.in_flight += 1
        asyncio.get_running_loop().create_task(self._send(target, lane, batch))

    async def _send(
        self, target: Target, lane: _Lane, batch: list[tuple[frames.Request, asyncio.Future[Reply]]]
    ) -> None:
        try:
            replies = await self._exchange(target, lane, [request for request, _ in batch])
        except Exception as exc:  # Unreachable, UpstreamTimeout, _NotFramed: each waiter's
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
        else:
            for (_, future), reply in zip(batch, replies, strict=True):
                if not future.done():
                    future.set_result(reply)
        finally:
            lane.in_flight -= 1
            if lane.waiting and not lane.flush_due:
                self._flush(target, lane)

    async def _exchange(
        self, target: Target, lane: _Lane, requests: list[frames.Request]
    ) -> list[Reply]:
        reply = await self.upstream.post(
            target, frames.PATH, frames.encode_requests(requests), _HEADERS
        )
        if reply.status == 404:
            lane.framed = False
            raise _NotFramed()
        if reply.status != 200:  # the replica refused the frame as a whole: each gets that
            return [reply] * len(requests)
        try:
            answers = frames.decode_answers(reply.body)
        except frames.FrameError as exc:
            raise Unreachable(f"a malformed frame: {exc}") from None
        if len(answers) != len(requests):
            raise Unreachable(f"{len(answers)} answers to {len(requests)} requests")
        return [_reply(status, media, body) for status, media, body in answers]


def _reply(status: int, content_type: bytes, body: bytes) -> Reply:
    headers = {"content-type": content_type.decode("latin-1")}
    if status == 503:
        headers["retry-after"] = "1"
    return Reply(status, headers, body)
