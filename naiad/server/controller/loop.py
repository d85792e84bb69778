"""The reconcile loop every controller runs: tick on a timer, or at once when woken."""

import logging
import threading
from typing import Any

from naiad.store.db import database_unavailable


class ReconcileLoop:
    """A daemon thread calling :meth:`tick` every ``interval`` seconds, or sooner on
    :meth:`wake`; a failed tick is logged and the next one tries again. A background
    service (``registry.Service``): committed writes to ``wakes_on`` rows wake it."""

    name = "naiad-loop"
    wakes_on: tuple[type[Any], ...] = ()

    def __init__(self, interval: float, log: logging.Logger) -> None:
        self.interval = interval
        self._log = log
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)

    def tick(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Tick again at once; a tick's own writes don't wake it: it has just seen them."""
        if threading.current_thread() is not self._thread:
            self._wake.set()

    def close(self) -> None:
        self.stop_loop()

    async def stop(self) -> None:
        self.close()

    def stop_loop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception as exc:
                if database_unavailable(exc):  # restarting, say: one line, not a traceback
                    first = str(exc).splitlines()[0][:300]
                    self._log.warning(
                        "%s: the database is unavailable (%s); retrying", self.name, first
                    )
                else:
                    self._log.exception("%s tick failed; retrying", self.name)
            self._wake.wait(self.interval)
            self._wake.clear()
