"""Data capture: a sampled fraction of requests' inputs and outputs, as JSON lines.

The event loop only samples and appends to a bounded in-memory queue; a writer thread
encodes and writes. Lines go to ``<dir>/<start time>-<pid>-<n>.jsonl.part``, renamed to
``.jsonl`` once closed (every ``rotate_s`` seconds, ``rotate_records`` records, and at
exit): the controller uploads and deletes ``*.jsonl`` files only, never one being written.
"""

import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np
import orjson


class Capture:
    """Sample requests on the loop (``offer``); write them on a thread (``start``/``close``)."""

    def __init__(
        self,
        directory: Path,
        fraction: float,
        *,
        rotate_s: float = 60.0,
        rotate_records: int = 10_000,
        max_pending: int = 10_000,
        on_drop: Callable[[], None] = lambda: None,
    ) -> None:
        self.directory = directory
        self.fraction = fraction
        self.rotate_s = rotate_s
        self.rotate_records = rotate_records
        self.max_pending = max_pending
        self.on_drop = on_drop
        self._queue: deque[tuple[float, np.ndarray, np.ndarray]] = deque()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._write_loop, name="naiad-capture", daemon=True)
        self._file: IO[bytes] | None = None
        self._path: Path | None = None
        self._opened = 0.0
        self._records = 0
        self._seq = 0

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._thread.start()

    def offer(self, inputs: np.ndarray, outputs: np.ndarray) -> None:
        """Keep this request with probability ``fraction`` (cheap: called for every one)."""
        if random.random() >= self.fraction:
            return
        if len(self._queue) >= self.max_pending:
            self.on_drop()
            return
        self._queue.append((time.time(), inputs, outputs))

    def close(self) -> None:
        """Write what is queued, close the current file and make it ``.jsonl``."""
        self._closing.set()
        if self._thread.is_alive():
            self._thread.join()

    def _write_loop(self) -> None:
        while not self._closing.wait(0.5):
            self._drain()
        self._drain()
        self._roll()

    def _drain(self) -> None:
        queue = self._queue
        while queue:
            at, inputs, outputs = queue.popleft()
            line = orjson.dumps(
                {"time": at, "inputs": inputs, "outputs": outputs},
                option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE,
            )
            self._output().write(line)
            self._records += 1
            if self._records >= self.rotate_records:
                self._roll()
        if self._file is not None:
            self._file.flush()
            if time.monotonic() - self._opened >= self.rotate_s:
                self._roll()

    def _output(self) -> IO[bytes]:
        if self._file is None:
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
            self._path = self.directory / f"{stamp}-{os.getpid()}-{self._seq:04d}.jsonl.part"
            self._seq += 1
            self._file = open(self._path, "ab")  # noqa: SIM115 - kept open across drains
            self._opened = time.monotonic()
            self._records = 0
        return self._file

    def _roll(self) -> None:
        if self._file is None or self._path is None:
            return
        self._file.close()
        os.replace(self._path, self._path.with_suffix(""))  # drop ".part"
        self._file = None
