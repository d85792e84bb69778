"""The metric pipeline: logging never blocks training on the network.

``log`` appends to in-memory columns under a lock (about a microsecond). A
background thread swaps the columns out every ``flush_interval`` seconds (or
sooner when a batch fills), gives the batch an id and POSTs it. When the server
cannot be reached the batch goes to a disk spool and is replayed, in order, with
exponential backoff; the id makes a replay of an already-stored batch a no-op.

Disk and network trouble never reach the training script: when the spool's disk is
full the batches wait in memory (up to ``max_held_points``), one warning says so, and
``lost_points`` counts what could be kept nowhere, for the run to report at its end.
"""

import contextlib
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
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
MAX_HELD_POINTS = 1_000_000  # about 50 MB of Python floats and ints


def _points(batch: dict[str, Any]) -> int:
    return sum(len(c["values"]) for c in batch["metrics"].values())


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
        max_held_points: int = MAX_HELD_POINTS,
    ) -> None:
        self._send = send
        self.spool = spool
        self.flush_interval = flush_interval
        self.max_batch_points = max_batch_points
        self.max_backoff = max_backoff
        self.max_held_points = max_held_points
        self._lock = threading.Lock()  # guards the columns
        self._send_lock = threading.Lock()  # one sender at a time keeps batches in order
        self._columns: dict[str, tuple[list[int], list[float], list[float]]] = {}
        self._points = 0
        self._auto_step = 0
        self._first = True
        self._known_keys: set[str] = set()
        # key -> the highest step the run already has: a resumed job's repeats are dropped
        self.floor: dict[str, int] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._backoff = 0.0
        self._retry_at = 0.0
        self.sent_points = 0
        self.dropped_points = 0  # refused by the server
        self.lost_points = 0  # neither the server, the disk nor memory could take them
        self._held: list[dict[str, Any]] = []  # batches the full disk refused, oldest first
        self._held_points = 0
        self._warned: set[str] = set()
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
            if self.floor:
                metrics = {k: v for k, v in metrics.items() if step > self.floor.get(k, step - 1)}
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

    def _warn_once(self, topic: str, message: str, *args: object) -> None:
        """One line on stderr per kind of trouble, however often it recurs."""
        if topic in self._warned:
            log.debug(message, *args)
            return
        self._warned.add(topic)
        log.warning(message, *args)

    def _deliver(self, batch: dict[str, Any]) -> bool:
        """True when the server has the batch; False to keep it and retry later."""
        try:
            self._send(batch)
        except RETRYABLE as exc:
            self._backoff = min(self.max_backoff, max(0.25, self._backoff * 2))
            self._retry_at = time.monotonic() + self._backoff
            if isinstance(exc, ServerError):  # it answered, so say why (e.g. its disk is full)
                self._warn_once(
                    "server",
                    "naiad: the server did not store metrics; they are kept and sent again (%s)",
                    exc.message.rstrip("."),
                )
            log.debug("metrics: server unavailable (%s); retry in %.2fs", exc, self._backoff)
            return False
        except PayloadTooLarge:  # a server with a lower limit than ours: halve and resend
            halves = _halve(batch)
            if len(halves) == 1:
                raise
            self.max_batch_points = max(1, self.max_batch_points // 2)
            return all(self._deliver(half) for half in halves)
        except NaiadError as exc:  # the server refused it: retrying cannot help
            lost = _points(batch)
            self.dropped_points += lost
            log.warning("metrics: the server refused %d points: %s", lost, exc)
            return True
        self._backoff = 0.0
        self.sent_points += _points(batch)
        return True

    def _keep(self, batch: dict[str, Any]) -> list[Path]:
        """Put a batch the server did not take where it waits: the spool on disk, or
        memory while the disk refuses. Batches held in memory go to disk first once it
        has room again, so the files stay in logging order. Returns the files written."""
        written: list[Path] = []
        try:
            while self._held:
                written.append(self.spool.write(self._held[0]))
                self._held_points -= _points(self._held.pop(0))
            written.append(self.spool.write(batch))
            return written
        except OSError as exc:
            self._warn_once(
                "disk",
                "naiad: cannot save metrics to %s (%s); keeping up to %s points in "
                "memory until the server takes them.",
                self.spool.dir,
                exc.strerror or exc,
                f"{self.max_held_points:,}",
            )
        points = _points(batch)
        if self._held_points + points > self.max_held_points:
            self.lost_points += points
        else:
            self._held.append(batch)
            self._held_points += points
        return written

    def _drain_once(self) -> bool:
        """Move what is buffered towards the server; True when nothing is left anywhere.

        The order is the logging order: spooled files first, then batches held in
        memory (newer than any file).
        """
        with self._send_lock:
            waiting = self.spool.pending()
            for batch in self._take_batches():
                behind = waiting or self._held or time.monotonic() < self._retry_at
                if behind or not self._deliver(batch):
                    waiting += self._keep(batch)
            for path in waiting:
                if time.monotonic() < self._retry_at:
                    return False
                if not self._deliver(Spool.read(path)):
                    return False
                Spool.remove(path)
            while self._held:
                if time.monotonic() < self._retry_at or not self._deliver(self._held[0]):
                    return False
                self._held_points -= _points(self._held.pop(0))
            return True

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            try:
                self._drain_once()
            except Exception as exc:  # never let the logging thread die
                self._warn_once("sender", "naiad: the metric sender hit %r; it goes on.", exc)

    # -- control ----------------------------------------------------------------------
    def flush(self, timeout: float = 30.0) -> bool:
        """Send everything logged so far; True when the server has all of it.

        Never raises: trouble on the disk or the network makes it return False.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self._drain_once():
                    return True
            except Exception as exc:
                self._warn_once("sender", "naiad: the metric sender hit %r; it goes on.", exc)
            pause = min(self._retry_at - time.monotonic(), deadline - time.monotonic())
            if time.monotonic() >= deadline:
                return False
            time.sleep(max(0.01, pause))

    def persist(self) -> None:
        """One pass: every point logged so far goes to the server, or to the spool on disk
        when the server is away, so a crash from now on loses none of them (unless the
        disk is full too). Never raises."""
        try:
            self._drain_once()
        except Exception as exc:
            self._warn_once("sender", "naiad: the metric sender hit %r; it goes on.", exc)

    def close(self, timeout: float = 30.0) -> bool:
        """Flush, stop the sender, and put what the server has not got on disk.

        What fits neither on disk nor was sent is added to ``lost_points``.
        """
        done = self.flush(timeout)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)
        if not done:
            with self._send_lock:
                for batch in self._take_batches():
                    try:
                        self._keep(batch)
                    except Exception as exc:  # the script is ending: count, never raise
                        self.lost_points += _points(batch)
                        self._warn_once("sender", "naiad: the metric sender hit %r.", exc)
                with contextlib.suppress(OSError):  # one more try for what memory holds
                    while self._held:
                        self.spool.write(self._held[0])
                        self._held_points -= _points(self._held.pop(0))
                self.lost_points += self._held_points  # the disk is still full: nowhere to go
                self._held, self._held_points = [], 0
        return done

    @property
    def held_points(self) -> int:
        """Points waiting in memory because the spool's disk is full."""
        return self._held_points
