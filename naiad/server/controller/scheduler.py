"""The job scheduler: a loop that reconciles stored job statuses with what the executor sees.

Each tick (a fraction of a second, or at once when woken by a submit or a stop):
1. every active job is polled and moved to the status its supervisor reports; on the
   first tick after a start this re-attaches to jobs that outlived a previous server,
   or marks them failed with the reason;
2. stop requests are passed to the executor;
3. pending jobs start in priority-then-FIFO order while the executor has room for their
   whole gang (``Executor.capacity``). The head of the queue is never overtaken by a
   smaller job behind it: it holds a reservation on what frees up, so a large gang is
   never starved by a stream of small jobs; its row says what it waits for;
4. once the queue is empty, running elastic jobs may grow into what is still free
   (``Executor.grow``), up to their ``max_nodes``.

Servers sharing one PostgreSQL database each run this loop, but only the one holding
the scheduler's advisory lock ticks (``store/leader.py``); the others stand by.
"""

import logging

from sqlalchemy.orm import Session

from naiad.core.status import Status
from naiad.executors.base import Capacity, Executor, LaunchSpec
from naiad.server.controller.loop import ReconcileLoop
from naiad.server.state import AppState
from naiad.services.jobs import apply_state, collect_spooled_metrics, end, launch_spec
from naiad.store import jobs
from naiad.store.db import transaction
from naiad.store.leader import Leadership
from naiad.store.tables import JobRow

log = logging.getLogger("naiad.scheduler")
QUEUE_PAGE = 64  # pending jobs read at once, from the head of the queue


class Scheduler(ReconcileLoop):
    name = "naiad-scheduler"
    wakes_on = (JobRow,)  # a submit or a stop request

    def __init__(
        self, state: AppState, executor: Executor | None = None, interval: float = 0.25
    ) -> None:
        """``executor``: the server's (``state.executor``) unless one is given."""
        super().__init__(interval, log)
        self.state = state
        self.executor = executor or state.executor
        self.leadership = Leadership.of(state.engine, "scheduler")

    def _spec(self, row: JobRow) -> LaunchSpec:
        return launch_spec(row, self.state.settings, self.state.job_key, self.state.artifacts.uri)

    def tick(self) -> None:
        if self.state.home.lost() is not None:
            return  # each supervisor ends its job when its directory goes; nothing to record
        if not self.leadership.held():
            return  # another server schedules
        with transaction(self.state.sessions) as session:
            running: list[LaunchSpec] = []
            for row in jobs.active(session):
                spec = self._spec(row)
                if row.stop_requested and row.status != Status.STOPPING:
                    jobs.transition(session, row, Status.STOPPING, jobs.stop_reason(row))
                    self.executor.stop(spec, spec.stop_grace_s)
                exec_state = self.executor.poll(spec)
                if exec_state.phase.terminal:
                    limit = self.state.settings.max_batch_points
                    collect_spooled_metrics(session, row, self.executor, limit)
                apply_state(session, row, exec_state)
                if not Status(row.status).terminal:
                    running.append(spec)
            for row in jobs.pending(session, stop_requested=True):
                end(session, row, Status.STOPPED, row.stop_reason or "Stopped before it started.")
            capacity = self.executor.capacity(running)
            if not self._start_queued(session, capacity):
                return  # the queue's head waits: what frees up is held for it
            for spec in running:  # what the queue left, elastic jobs may grow into
                if spec.elastic:
                    self.executor.grow(spec, capacity)

    def _start_queued(self, session: Session, capacity: Capacity) -> bool:
        """Start pending jobs while they fit; False when the head of the queue must wait.

        The queue's head, a page at a time: a deep queue is not read whole every tick
        (every job of a page either starts or, the first that does not fit, ends it).
        """
        while page := jobs.pending(session, limit=QUEUE_PAGE, stop_requested=False):
            for row in page:
                want = row.spec
                why = capacity.take(want.nodes, want.processes_per_node, want.gpus)
                if why is not None:
                    waiting = f"Waiting for resources: {why}."
                    if row.status_reason != waiting:
                        row.status_reason = waiting
                    return False  # FIFO: wait for room rather than let smaller jobs jump ahead
                jobs.transition(session, row, Status.STARTING, "Resources free; launching.")
                row.handle = self.executor.submit(self._spec(row)).to_json()
        return True

    def close(self) -> None:
        super().close()
        self.leadership.release()  # another server takes over at once, not after a timeout
