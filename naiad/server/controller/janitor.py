"""The janitor: applies the retention of finished jobs' work directories once an hour.

The first pass comes a few minutes after the server starts, so a cold start never waits
on walking old work directories. A pass only removes files and folds the database's
write-ahead log in without waiting for readers (see ``services.maintenance``).
"""

import logging
import time

from naiad.server.controller.loop import ReconcileLoop
from naiad.server.state import AppState
from naiad.services.maintenance import collect_garbage

log = logging.getLogger("naiad.janitor")

EVERY_S = 3600.0
FIRST_AFTER_S = 300.0


class Janitor(ReconcileLoop):
    name = "naiad-janitor"

    def __init__(
        self, state: AppState, every_s: float = EVERY_S, first_after_s: float = FIRST_AFTER_S
    ) -> None:
        super().__init__(min(60.0, every_s), log)  # a cheap look at the clock each minute
        self.state = state
        self.every_s = every_s
        self._due = time.monotonic() + first_after_s

    def tick(self) -> None:
        if time.monotonic() < self._due:
            return
        self._due = time.monotonic() + self.every_s
        state = self.state
        result = collect_garbage(
            state.engine,
            state.sessions,
            state.artifacts,
            state.executor,
            state.settings,
            truncate_wal=False,
        )
        if result.freed_bytes:
            log.info(
                "freed %d bytes: %d work directories of jobs finished over %g days ago, "
                "%d spool files, the database log",
                result.freed_bytes,
                result.work_dirs,
                result.older_than_days,
                result.spool_files,
            )
        for problem in result.problems:
            log.warning("%s", problem)
