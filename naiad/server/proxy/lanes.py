"""Requests to one replica leave together, in frames (``naiad.core.frames``).

Each replica has a lane: requests for it wait there while a frame is on its way, and the
next frame carries all of them, so the replica gets its requests together and its batches
stay full, and the proxy pays one upstream exchange per frame, not per request. A request
that finds the lane idle leaves on the next pass of the event loop.

When a frame comes back, the clients it answered usually send their next request at
once. If fewer than ``FILL`` requests (or fewer than that frame and those waiting held)
are waiting, the lane waits for them up to ``GRACE_S``, never longer than the endpoint's
own batching delay: closed-loop clients would otherwise settle into two halves taking
turns, each frame half as full, with two process wake-ups (the costly part of the hop on
a VM) for every half. Larger frames gain nothing from the wait and leave at once. Two
frames in flight measured worse than one (docs/benchmarks.md).

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
FILL = 16  # a frame this full leaves at once: its wake-ups cost little a request
GRACE_S = 0.0005  # the longest a request waits for the answered clients to come back
MAX_FRAME_BYTES = 1024 * 1024  # request bodies per frame (a replica takes frames.MAX_BYTES)
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
    expect: int = 0  # requests the last frame's clients and the waiting ones make
    expect_until: float = 0.0  # the loop's clock: how long to wait for them
    timer: asyncio.TimerHandle | None = None
    grace: float = 0.0  # GRACE_S within the endpoint's batching delay


class Lanes:
    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self._lanes: dict[Target, _Lane] = {}
        self._sending: set[asyncio.Task[None]] = set()  # the loop holds tasks weakly

    async def post(
        self, target: Target, body: bytes, headers: dict[str, str], max_delay_s: float = 0.0
    ) -> Reply:
        """The replica's answer to one invocation (raises what ``Upstream.post`` raises);
        ``max_delay_s``: the endpoint's batching delay, the most the lane waits to fill."""
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
        lane.grace = min(GRACE_S, max_delay_s)
        lane.waiting.append((request, future))
        if lane.timer is not None and len(lane.waiting) >= lane.expect:
            lane.timer.cancel()
            lane.timer = None
            asyncio.get_running_loop().call_soon(self._flush, target, lane)
        elif not lane.flush_due:
            self._schedule(target, lane)
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

    def _schedule(self, target: Target, lane: _Lane) -> None:
        """Send the waiting requests on the next pass, or once the expected ones are in."""
        if lane.flush_due or lane.in_flight >= IN_FLIGHT or not lane.waiting:
            return
        loop = asyncio.get_running_loop()
        lane.flush_due = True
        if len(lane.waiting) >= lane.expect or loop.time() >= lane.expect_until:
            loop.call_soon(self._flush, target, lane)
        else:
            lane.timer = loop.call_at(lane.expect_until, self._flush, target, lane)

    def _flush(self, target: Target, lane: _Lane) -> None:
        lane.flush_due = False
        lane.timer = None
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
        task = asyncio.get_running_loop().create_task(self._send(target, lane, batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

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
            lane.expect = min(FILL, len(batch) + len(lane.waiting))
            lane.expect_until = asyncio.get_running_loop().time() + lane.grace
            self._schedule(target, lane)

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
