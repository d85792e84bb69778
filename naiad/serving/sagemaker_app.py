"""The replica's invocations for a SageMaker model (``naiad.serving.handler``).

Two ways, chosen at load by what the inference script defines:

* **Default handlers** (the script defines only ``model_fn``, or there is no script):
  :class:`DefaultHandlerApp` decodes the body itself, and requests share model calls
  through the dynamic batcher, each getting its own rows back. An input without a batch
  dimension (fewer than two dimensions) runs in a call of its own, as it came.
* **The script's handlers** (any of ``input_fn``, ``predict_fn``, ``output_fn``,
  ``transform_fn``): :class:`ScriptHandlerApp` runs the whole chain for each request on
  one worker thread, one request at a time, off the event loop: nothing says a user's
  handlers are thread-safe, nor that their inputs can be stacked.

A model's failure answers 500 (or the status its exception carries), never a traceback;
the replica keeps serving.
"""

import asyncio
import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from naiad.core.errors import NaiadError
from naiad.serving import sagemaker_codec as wire
from naiad.serving.app import (
    InvocationApp,
    Receive,
    Scope,
    Send,
    error_body,
    request_headers,
    respond,
)
from naiad.serving.batcher import Batcher, ModelError, QueueFull
from naiad.serving.capture import Capture
from naiad.serving.handler import Handler, HandlerError, make_request
from naiad.serving.loader import set_threads
from naiad.serving.stats import ReplicaStats

T = TypeVar("T")


def _headers(scope: Scope) -> tuple[str, str, int]:
    """(Content-Type, Accept, Content-Length or -1) of a request, as text."""
    content_type, accept, length = request_headers(scope)
    return content_type.decode("latin-1"), accept.decode("latin-1"), length


async def _refuse(send: Send, exc: NaiadError) -> int:
    extra = ((b"retry-after", b"1"),) if exc.status_code == 503 else ()
    await respond(send, exc.status_code, error_body(exc.code, exc.message), extra=extra)
    return exc.status_code


class DefaultHandlerApp(InvocationApp):
    """The toolkit's default input, predict and output functions, with dynamic batching."""

    def __init__(
        self,
        batcher: Batcher,
        stats: ReplicaStats,
        *,
        max_rows: int | None = None,
        max_body_bytes: int = 16 * 1024 * 1024,
        capture: Capture | None = None,
    ) -> None:
        super().__init__(stats, max_body_bytes=max_body_bytes, capture=capture)
        self.batcher = batcher
        self.max_rows = max_rows

    async def _invocations(self, scope: Scope, receive: Receive, send: Send) -> int:
        content_type, accept, length = _headers(scope)
        try:
            media = wire.negotiate(accept)  # before the body: a 406 costs no model time
            if length > self.max_body_bytes:
                raise self._too_large()
            body = await self._body(receive)
            inputs = wire.decode(body, content_type, self.max_rows)
            outputs = await self.batcher.submit(inputs, alone=inputs.ndim < 2)
        except ModelError as exc:  # the toolkit answers a model's failure with a 500
            return await _refuse(send, HandlerError(exc.message))
        except NaiadError as exc:
            return await _refuse(send, exc)
        try:
            answer = wire.encode(outputs, media)
        except (TypeError, ValueError):
            message = f"The model's output ({outputs.dtype}) cannot be written as {media}."
            return await _refuse(send, HandlerError(message))
        if self.capture is not None:
            self.capture.offer(inputs, outputs)
        await respond(send, 200, answer, media.encode())
        return 200


class HandlerRunner:
    """One worker thread running whole requests, one at a time, in arrival order."""

    def __init__(
        self,
        threads: int = 1,
        queue_size: int = 1024,
        on_call: Callable[[int, int, float], None] | None = None,
    ) -> None:
        self.queue_size = queue_size
        self.on_call = on_call
        self.waiting = 0  # requests handed to the worker and not yet answered
        self._pool = ThreadPoolExecutor(
            max_workers=1,
            thread_name_prefix="naiad-handler",
            initializer=set_threads,
            initargs=(threads,),
        )

    @property
    def depth(self) -> int:
        """Requests waiting for the worker (not counting the one it runs)."""
        return max(0, self.waiting - 1)

    async def run(self, call: Callable[[], T]) -> T:
        if self.waiting > self.queue_size:
            raise QueueFull(f"The replica has {self.depth} requests waiting; retry in a second.")
        self.waiting += 1
        seconds = [0.0]

        def timed() -> T:
            started = time.perf_counter()
            try:
                return call()
            finally:
                seconds[0] = time.perf_counter() - started

        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, timed)
        finally:
            self.waiting -= 1
            if self.on_call is not None:
                self.on_call(1, 1, seconds[0])

    def start(self) -> None:
        """Nothing to start: the worker thread starts with the first request."""

    async def close(self) -> None:
        """Let the running request finish (a draining server waits for them first)."""
        await asyncio.get_running_loop().run_in_executor(None, self._pool.shutdown)


class ScriptHandlerApp(InvocationApp):
    """The inference script's chain, run whole for each request on the runner's thread."""

    def __init__(
        self,
        handler: Handler,
        runner: HandlerRunner,
        stats: ReplicaStats,
        *,
        max_body_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        super().__init__(stats, max_body_bytes=max_body_bytes)
        self.handler = handler
        self.runner = runner

    async def _invocations(self, scope: Scope, receive: Receive, send: Send) -> int:
        content_type, accept, length = _headers(scope)
        try:
            if length > self.max_body_bytes:
                raise self._too_large()
            body = await self._body(receive)
            headers = {
                name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]
            }
            request = make_request(body, content_type, accept, headers)
            answer, media = await self.runner.run(functools.partial(self.handler.invoke, request))
        except NaiadError as exc:
            return await _refuse(send, exc)
        await respond(send, 200, answer, media.encode("latin-1"))
        return 200
