"""The metric pipeline: logging never blocks training on the network.

``log`` appends to in-memory columns under a lock (about a microsecond). A
background thread swaps the columns out every ``flush_interval`` seconds (or
sooner when a batch fills), gives the batch an id and POSTs it. When the server
cannot be reached the batch goes to a disk spool and is replayed, in order, with
exponential backoff; the id makes a replay of an already-stored batch a no-op.
"""

import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from naiad.core.errors import (
    InvalidInput,
    NaiadError,
    PayloadTooLarge,
    ServerError,
    ServerUnreachable,
)
from naiad.core.names import check_key
from naiad.sdk.spool import Spool

log = logging.getLogger("naiad.sdk")

Send = Callable[[dict[str, Any]], None]
RETRYABLE = (ServerUnreachable, ServerError)


def _encode(values: list[float]) -> list[float | str]:
    """JSON has no NaN: send non-finite values as "NaN"/"Infinity"/"-Infinity"."""
    if all(math.isfinite(v) for v in values):
        return values  # type: ignore[return-value]
    return [
        v if math.isfinite(v) else ("NaN" if v != v else ("Infinity" if v > 0 else "-Infinity"))
        for v in values
    ]


def _halve(batch: dict[str, Any]) -> list[dict[str, Any]]:
    """Two batches holding the first and second half of each metric's points.

    Their ids derive from the parent's, so halving the same batch again after a
    failed send gives the same ids and the server skips what it already has.
    """
    first: dict[str, Any] = {}
    second: dict[str, Any] = {}
    for key, columns in batch["metrics"].items():
        mid = len(columns["values"]) // 2
        if mid:
            first[key] = {name: col[:mid] for name, col in columns.items()}
        second[key] = {name: col[mid:] for name, col in columns.items()}
    if not first:
        return [batch]
    parent = batch["batch_id"]
    return [
        {"batch_id": f"{parent}-{suffix}", "metrics": part}
        for suffix, part in (("a", first), ("b", second))
        if part
    ]


class MetricPipeline:
    def __init__(
        self,
        send: Send,
        spool: Spool,
        flush_interval: float = 1.0,
        max_batch_points: int = 100_000,
        max_backoff: float = 10.0,
    ) -> None:
        self._send = send
        self.spool = spool
        self.flush_interval = flush_interval
        self.max_batch_points = max_batch_points
        self.max_backoff = max_backoff
        self._lock = threading.Lock()  # guards the columns
        self._send_lock = threading.Lock()  # one sender at a time keeps batches in order
        self._columns: dict[str, tuple[list[int], list[float], list[float]]] = {}
        self._points = 0
        self._auto_step = 0
        self._first = True
        self._known_keys: set[str] = set()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._backoff = 0.0
        self._retry_at = 0.0
        self.sent_points = 0
        self.dropped_points = 0
        self._thread = threading.Thread(target=self._loop, name="naiad-metrics", daemon=True)
        self._thread.start()

    # -- the hot path ---------------------------------------------------------------
    def log(
        self, metrics: Mapping[str, float], step: int | None = None, timestamp: float | None = None
    ) -> None:
        ts = time.time() if timestamp is None else float(timestamp)
        with self._lock:
            if step is None:
                step = self._auto_step
            self._auto_step = step + 1
            for key, value in metrics.items():
                column = self._columns.get(key)
                if column is None:
                    if key not in self._known_keys:
                        check_key(key, "Metric key")
                        self._known_keys.add(key)
                    column = self._columns[key] = ([], [], [])
                try:
                    column[2].append(float(value))
                except (TypeError, ValueError):
                    raise InvalidInput(
                        f"Metric {key!r} must be a number; got {type(value).__name__} {value!r}."
                    ) from None
                column[0].append(step)
                column[1].append(ts)
            self._points += len(metrics)
            full = self._points >= self.max_batch_points
        if full or self._first:
            self._first = False  # the first point goes out at once: people watch for it
            self._wake.set()

    # -- the background side ----------------------------------------------------------
    def _take_batches(self) -> list[dict[str, Any]]:
        """Everything logged so far, cut into batches of at most ``max_batch_points``.

        The buffer grows past one batch while a slow send is in flight; a batch over
        the server's limit would be refused, so it is never built.
        """
        with self._lock:
            if not self._points:
                return []
            columns, self._columns, self._points = self._columns, {}, 0
        batches: list[dict[str, Any]] = []
        current: dict[str, Any] = {}
        room = self.max_batch_points
        for key, (steps, times, values) in columns.items():
            start = 0
            while start < len(steps):
                end = start + min(room, len(steps) - start)
                current[key] = {
                    "steps": steps[start:end],
                    "timestamps": times[start:end],
                    "values": _encode(values[start:end]),
                }
                room -= end - start
                start = end
                if room == 0:
                    batches.append({"batch_id": uuid.uuid4().hex, "metrics": current})
                    current, room = {}, self.max_batch_points
        if current:
            batches.append({"batch_id": uuid.uuid4().hex, "metrics": current})
        return batches

    def _deliver(self, batch: dict[str, Any]) -> bool:
        """True when the server has the batch; False to keep it and retry later."""
        try:
            self._send(batch)
        except RETRYABLE as exc:
            self._backoff = min(self.max_backoff, max(0.25, self._backoff * 2))
            self._retry_at = time.monotonic() + self._backoff
            log.debug("metrics: server unavailable (%s); retry in %.2fs", exc, self._backoff)
            return False
        except PayloadTooLarge:  # a server with a lower limit than ours: halve and resend
            halves = _halve(batch)
            if len(halves) == 1:
                raise
            self.max_batch_points = max(1, self.max_batch_points // 2)
            return all(self._deliver(half) for half in halves)
        except NaiadError as exc:  # the server refused it: retrying cannot help
            lost = sum(len(c["values"]) for c in batch["metrics"].values())
            self.dropped_points += lost
            log.warning("metrics: the server refused %d points: %s", lost, exc)
            return True
        self._backoff = 0.0
        self.sent_points += sum(len(c["values"]) for c in batch["metrics"].values())
        return True

    def _drain_once(self) -> bool:
        """Move what is buffered towards the server; True when nothing is left anywhere."""
        with self._send_lock:
            waiting = self.spool.pending()
            for batch in self._take_batches():
                if waiting or time.monotonic() < self._retry_at or not self._deliver(batch):
                    waiting.append(self.spool.write(batch))
            for path in waiting:
                if time.monotonic() < self._retry_at:
                    return False
                if not self._deliver(Spool.read(path)):
                    return False
                Spool.remove(path)
            return True

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            try:
                self._drain_once()
            except Exception:  # never let the logging thread die
                log.exception("metrics: unexpected error in the sender")

    # -- control ----------------------------------------------------------------------
    def flush(self, timeout: float = 30.0) -> bool:
        """Send everything logged so far; True when the server has all of it."""
        deadline = time.monotonic() + timeout
        while True:
            if self._drain_once():
                return True
            pause = min(self._retry_at - time.monotonic(), deadline - time.monotonic())
            if time.monotonic() >= deadline:
                return False
            time.sleep(max(0.01, pause))

    def close(self, timeout: float = 30.0) -> bool:
        done = self.flush(timeout)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)
        if not done:
            with self._send_lock:
                for batch in self._take_batches():
                    self.spool.write(batch)
        return done
