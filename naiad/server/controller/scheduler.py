"""The job scheduler: a loop that reconciles stored job statuses with what the executor sees.

Each tick (a fraction of a second, or at once when woken by a submit or a stop):
1. every active job is polled and moved to the status its supervisor reports; on the
   first tick after a start this re-attaches to jobs that outlived a previous server,
   or marks them failed with the reason;
2. stop requests are passed to the executor;
3. pending jobs start in priority-then-FIFO order while the executor has free slots.
   The head of the queue is never overtaken by a smaller job behind it.
"""

import logging
import threading

from sqlalchemy import event
from sqlalchemy.orm import Session

from naiad.core.status import Status
from naiad.executors.base import Executor, LaunchSpec
from naiad.server.state import AppState
from naiad.services.jobs import apply_state, collect_spooled_metrics, end, launch_spec
from naiad.store import jobs
from naiad.store.db import transaction
from naiad.store.tables import JobRow

log = logging.getLogger("naiad.scheduler")


class Scheduler:
    def __init__(self, state: AppState, executor: Executor, interval: float = 0.25) -> None:
        self.state = state
        self.executor = executor
        self.interval = interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="naiad-scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def wake_after_commit(self, session: Session) -> None:
        """Tick as soon as this request's transaction has committed what the tick must see."""
        event.listen(session, "after_commit", lambda _: self.wake(), once=True)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
        self.executor.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("scheduler tick failed; retrying")
            self._wake.wait(self.interval)
            self._wake.clear()

    def _spec(self, row: JobRow) -> LaunchSpec:
        return launch_spec(row, self.state.settings, self.state.token, self.state.artifacts.uri)

    def tick(self) -> None:
        with transaction(self.state.sessions) as session:
            busy = 0
            for row in jobs.active(session):
                spec = self._spec(row)
                if row.stop_requested and row.status != Status.STOPPING:
                    jobs.transition(session, row, Status.STOPPING, "Stop requested.")
                    self.executor.stop(spec, spec.stop_grace_s)
                exec_state = self.executor.poll(spec)
                if exec_state.phase in ("succeeded", "failed", "stopped", "lost"):
                    limit = self.state.settings.max_batch_points
                    collect_spooled_metrics(session, row, spec.work_dir, limit)
                apply_state(session, row, exec_state)
                if not Status(row.status).terminal:
                    busy += row.spec["processes_per_node"]
            free = self.executor.slots - busy
            for row in jobs.pending(session):
                if row.stop_requested:
                    end(session, row, Status.STOPPED, "Stopped before it started.")
                    continue
                need = row.spec["processes_per_node"]
                if need > free:
                    break  # FIFO: wait for room rather than let smaller jobs jump the queue
                jobs.transition(session, row, Status.STARTING, "Resources free; launching.")
                self.executor.submit(self._spec(row))
                free -= need
