"""Dynamic batching: requests queue up, one worker runs them through the model in batches.

The decision of what to run is :func:`plan`, a pure function of the queue, the limits
and the clock, so it is tested without a server (LitServe's ``collate_requests``). The
:class:`Batcher` around it owns the queue, runs the model on one thread off the event
loop (the loop keeps parsing requests meanwhile) and hands each request its own rows.

Requests share a model call only when their examples have the same shape and dtype; a
request submitted ``alone`` (an input without a batch dimension) never shares one.
"""

import asyncio
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from naiad.core.errors import NaiadError
from naiad.serving.loader import first_line


class QueueFull(NaiadError):
    """Too many requests are waiting; the client should retry shortly."""

    status_code = 503
    code = "queue_full"


class ModelError(NaiadError):
    """The model failed on a valid request; the message is the model's."""

    status_code = 422
    code = "model_error"


class Queued(Protocol):
    rows: int
    arrived: float


@dataclass(frozen=True, slots=True)
class Plan:
    """Run the first ``take`` queued requests now; or (``take == 0``) look again within
    ``wait`` seconds (the time left of ``max_delay``), or once a request arrives when
    ``wait`` is None. The :class:`Batcher` looks again sooner: after every pass of its
    event loop, since only a pass can bring new requests."""

    take: int
    wait: float | None = None


def plan(
    pending: Sequence[Queued],
    max_batch: int,
    max_delay: float,
    now: float,
    last_look: float = -math.inf,
) -> Plan:
    """What to run now: whole requests from the front of the queue (FIFO, never split).

    A batch runs as soon as it is full (``max_batch`` rows, or the next request would not
    fit), when its oldest request has waited ``max_delay`` seconds, or when nothing has
    arrived since the previous look at ``last_look``: the requests this process has
    received are all in, and waiting more would wait on the network, adding latency
    without a promise of rows. A request of more than ``max_batch`` rows runs alone.
    """
    if not pending:
        return Plan(0, None)
    rows = 0
    take = 0
    for item in pending:
        if rows + item.rows > max_batch:
            return Plan(max(take, 1))  # full: the next one does not fit (or the first is huge)
        rows += item.rows
        take += 1
        if rows == max_batch:
            return Plan(take)
    waited = now - pending[0].arrived
    if waited >= max_delay or pending[-1].arrived <= last_look:
        return Plan(take)
    return Plan(0, max_delay - waited)


@dataclass(slots=True)
class _Item:
    array: np.ndarray
    rows: int  # what the plan counts: the whole batch for a request that runs alone
    arrived: float
    future: asyncio.Future[np.ndarray]
    alone: bool = False


class _RowsMismatch(Exception):
    """Requests batched together got back a number of rows that cannot be split among them."""


def _size(item: _Item) -> int:
    """The rows a request really holds (for the figures)."""
    if not item.alone:
        return item.rows
    return item.array.shape[0] if item.array.ndim else 1


class Batcher:
    """Queue requests, run them in batches on one model thread, answer each with its rows.

    ``infer`` takes the concatenated batch (rows first) and must return one output row
    per input row; it runs on a dedicated thread, never on the event loop. With
    ``strict_rows`` off (SageMaker models, whose outputs are whatever the model returns) a
    request that ran by itself gets the model's whole output, and a batch of several whose
    output rows do not match its input rows is run again request by request. The loop hands
    that thread a whole batch through a lock-free queue and gets every result back in one
    wake-up (``call_soon_threadsafe``): two thread hand-offs per batch, whatever its size,
    because each hand-off waits for the GIL.
    """

    def __init__(
        self,
        infer: Callable[[np.ndarray], np.ndarray],
        *,
        max_batch: int = 64,
        max_delay: float = 0.005,
        queue_size: int = 1024,
        on_batch: Callable[[int, int, float], None] | None = None,
        thread_context: Callable[[], AbstractContextManager[object]] | None = None,
        strict_rows: bool = True,
    ) -> None:
        """``on_batch(rows, requests, seconds)`` is called on the loop after each batch.
        ``thread_context()`` is entered on the model thread for the thread's whole life
        (torch's thread count and inference mode are per thread)."""
        self.infer = infer
        self.max_batch = max_batch
        self.max_delay = max_delay
        self.queue_size = queue_size
        self.on_batch = on_batch
        self.strict_rows = strict_rows
        self._thread_context = thread_context or nullcontext
        self._pending: deque[_Item] = deque()
        self._wake: asyncio.Future[None] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._jobs: queue.SimpleQueue[list[_Item] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._model_thread, name="naiad-model", daemon=True)
        self._running: asyncio.Future[None] | None = None  # the batch on the model thread
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def depth(self) -> int:
        """Requests waiting (not counting the batch the model is running)."""
        return len(self._pending)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread.start()
        self._worker = self._loop.create_task(self._run())

    async def close(self) -> None:
        """Stop taking batches, let the one running finish, fail whatever is still queued
        (there should be nothing: a draining server waits for its requests first)."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        while self._pending:
            item = self._pending.popleft()
            if not item.future.done():
                item.future.set_exception(QueueFull("The replica is shutting down."))
        if self._thread.is_alive():
            self._jobs.put(None)
            loop = asyncio.get_running_loop()  # the running batch still delivers through it
            await loop.run_in_executor(None, self._thread.join)

    def submit(self, array: np.ndarray, alone: bool = False) -> asyncio.Future[np.ndarray]:
        """Queue one request's batch; the future gets its output rows (or the error).

        ``alone``: run it in a model call of its own, as it is (it has no batch dimension).
        Raises :class:`QueueFull` at once when ``queue_size`` requests are waiting.
        """
        if len(self._pending) >= self.queue_size:
            raise QueueFull(
                f"The replica has {len(self._pending)} requests waiting; retry in a second."
            )
        loop = self._loop
        assert loop is not None, "Batcher.start() was not called"
        future = loop.create_future()
        rows = self.max_batch if alone else array.shape[0]
        self._pending.append(_Item(array, rows, time.perf_counter(), future, alone))
        wake = self._wake  # set only while the worker sleeps on an empty queue
        if wake is not None:
            self._wake = None
            if not wake.done():
                wake.set_result(None)
        return future

    async def _sleep(self) -> None:
        """Until submit() wakes us: the queue was empty."""
        loop = self._loop
        assert loop is not None
        wake = self._wake = loop.create_future()
        try:
            await wake
        finally:
            self._wake = None

    async def _run(self) -> None:
        loop = self._loop
        assert loop is not None
        pending = self._pending
        clock = time.perf_counter
        last_look = -math.inf
        while True:
            now = clock()
            decision = plan(pending, self.max_batch, self.max_delay, now, last_look)
            if decision.take:
                batch = [pending.popleft() for _ in range(decision.take)]
                running = self._running = loop.create_future()
                self._jobs.put(batch)  # never blocks: the queue is unbounded
                await running
                last_look = -math.inf
            elif decision.wait is None:
                await self._sleep()
                last_look = -math.inf
            else:
                # New requests enter the queue only when the loop runs their tasks: let it
                # pass (twice: bytes read in one pass start their task in the next).
                last_look = now
                await asyncio.sleep(0)
                await asyncio.sleep(0)

    def _model_thread(self) -> None:
        """Run batches until ``None`` comes; every result goes back in one loop callback."""
        loop = self._loop
        assert loop is not None
        jobs = self._jobs
        clock = time.perf_counter
        with self._thread_context():
            while (batch := jobs.get()) is not None:
                started = clock()
                results = self._results(batch)
                loop.call_soon_threadsafe(self._deliver, batch, results, clock() - started)

    def _deliver(
        self, batch: list[_Item], results: list[np.ndarray | ModelError], seconds: float
    ) -> None:
        """On the loop: each request its rows or its error, then the next batch may go."""
        for item, result in zip(batch, results, strict=True):
            future = item.future
            if future.done():  # cancelled: the client went away
                continue
            if isinstance(result, ModelError):
                future.set_exception(result)
            else:
                future.set_result(result)
        if self.on_batch is not None:
            self.on_batch(sum(_size(item) for item in batch), len(batch), seconds)
        running = self._running
        if running is not None and not running.done():
            running.set_result(None)

    def _results(self, batch: list[_Item]) -> list[np.ndarray | ModelError]:
        """On the model thread: each item's rows, or the error that is its answer."""
        try:
            return self._infer(batch)
        except ModelError as exc:
            return [ModelError(exc.message) for _ in batch]
        except Exception as exc:
            if len(batch) > 1:  # one request may be the culprit: run each alone
                return [result for item in batch for result in self._results([item])]
            return [ModelError(f"The model failed on this input: {first_line(exc)}.")]

    def _infer(self, batch: list[_Item]) -> list[np.ndarray | ModelError]:
        """Each item's output rows.

        Requests whose examples differ in shape (a signature with a free dimension other
        than the batch) or dtype cannot share a tensor: each run of equal ones is one model
        call, and a request that runs alone is a call of its own.
        """
        results: list[np.ndarray | ModelError] = []
        start = 0
        while start < len(batch):
            first = batch[start]
            stop = start + 1
            if not first.alone:
                shape, dtype = first.array.shape[1:], first.array.dtype
                while stop < len(batch):
                    other = batch[stop].array
                    if batch[stop].alone or other.shape[1:] != shape or other.dtype != dtype:
                        break
                    stop += 1
            group = batch[start:stop]
            if len(group) == 1:
                inputs = first.array
            else:
                inputs = np.concatenate([item.array for item in group])
            outputs = self.infer(inputs)
            if not self.strict_rows and len(group) == 1:
                results.append(outputs)  # whatever the model made of this request alone
                start = stop
                continue
            if outputs.ndim == 0 or outputs.shape[0] != inputs.shape[0]:
                got = "a scalar" if outputs.ndim == 0 else f"{outputs.shape[0]} rows"
                if not self.strict_rows:
                    raise _RowsMismatch(f"{got} for {inputs.shape[0]} rows")
                raise ModelError(
                    f"The model returned {got} for a batch of {inputs.shape[0]} rows "
                    f"({len(group)} requests); it must return one output row per input row."
                )
            row = 0
            for item in group:
                results.append(outputs[row : row + item.rows])
                row += item.rows
            start = stop
        return results
