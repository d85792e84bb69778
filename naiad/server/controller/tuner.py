"""The tuner: a loop that moves every open tuning job one turn on (``services/tuning``).

It wakes when a job row changes (a trial ended, so the next can start at once) or a
tuning job is created or asked to stop, and otherwise every second, to read the running
trials' intermediate values for early stopping. Each tuning job's turn is one
transaction of its own, so one that fails is retried next tick and holds up no other.
Like the scheduler, only the server holding the tuner's lead acts.
"""

import logging

from naiad.core.errors import NaiadError
from naiad.server.controller.loop import ReconcileLoop
from naiad.server.state import AppState
from naiad.services import tuning as tuning_service
from naiad.store import tuning
from naiad.store.db import transaction
from naiad.store.leader import Leadership
from naiad.store.tables import JobRow, TuningJobRow

log = logging.getLogger("naiad.tuner")


class Tuner(ReconcileLoop):
    name = "naiad-tuner"
    wakes_on = (JobRow, TuningJobRow)

    def __init__(self, state: AppState, interval: float = 1.0) -> None:
        super().__init__(interval, log)
        self.state = state
        self.leadership = Leadership.of(state.engine, "tuner")

    def tick(self) -> None:
        if self.state.home.lost() is not None or not self.leadership.held():
            return
        with transaction(self.state.sessions) as session:
            names = [row.name for row in tuning.active(session)]
        launcher = tuning_service.Launcher(
            store=self.state.artifacts, slots=self.state.slots, nodes=self.state.executor.nodes
        )
        for name in names:
            try:
                with transaction(self.state.sessions) as session:
                    tuning_service.advance(session, tuning.get_row(session, name), launcher)
            except NaiadError as exc:
                log.warning("tuning job %s: %s; retrying", name, exc.message)
            except Exception:
                log.exception("tuning job %s: its turn failed; retrying", name)

    def close(self) -> None:
        super().close()
        self.leadership.release()
