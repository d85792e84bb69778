"""The reconcile loop both controllers run: tick on a timer, or at once when woken."""

import logging
import threading

from sqlalchemy import event
from sqlalchemy.orm import Session


class ReconcileLoop:
    """A daemon thread calling :meth:`tick` every ``interval`` seconds, or sooner on
    :meth:`wake`; a failed tick is logged and the next one tries again."""

    name = "naiad-loop"

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
        self._wake.set()

    def wake_after_commit(self, session: Session) -> None:
        """Tick as soon as this request's transaction has committed what the tick must see."""
        event.listen(session, "after_commit", lambda _: self.wake(), once=True)

    def stop_loop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                self._log.exception("%s tick failed; retrying", self.name)
            self._wake.wait(self.interval)
            self._wake.clear()
