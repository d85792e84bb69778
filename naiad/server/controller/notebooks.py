"""The notebook keeper: a loop that keeps every notebook's JupyterLab as its row asks.

Pending and InService notebooks run: started (after their requirements install), pinged,
restarted when they die (with back-off when they die before answering, Failed after
``MAX_FAILED_STARTS`` such starts in a row), and stopped once idle past their
``idle_timeout_s`` (JupyterLab's own ``last_activity``: requests and kernel activity).
Stopping ones end (SIGTERM, SIGKILL after a grace) and become Stopped with their files
kept; Deleting ones end and go with their files. A restarted server re-attaches the
processes a previous one started. With several servers, the holder of the "notebooks"
lead runs them on its machine.
"""

import logging
import time
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from naiad.server.controller.loop import ReconcileLoop
from naiad.server.managed.notebooks import NotebookFleet, NotebookProcess, available
from naiad.server.managed.process import Policy
from naiad.server.proxy.forward import Forwarder
from naiad.server.state import AppState
from naiad.store import notebooks
from naiad.store.db import transaction
from naiad.store.leader import Leadership
from naiad.store.tables import NotebookRow, utcnow

log = logging.getLogger("naiad.notebooks")

MAX_FAILED_STARTS = 4
STARTING_INTERVAL_S = 0.1
ACTIVITY_EVERY_S = 10.0
POLICY = Policy(start_timeout_s=180.0, stop_grace_s=10.0, unhealthy_restart_s=60.0)


def _idle(seconds: float) -> str:
    minutes = seconds / 60
    return f"{minutes:.0f} min" if minutes >= 1 else f"{seconds:.0f} s"


class NotebookKeeper(ReconcileLoop):
    name = "naiad-notebooks"
    wakes_on = (NotebookRow,)

    def __init__(self, state: AppState, interval: float = 1.0) -> None:
        super().__init__(interval, log)
        self.idle_interval = interval
        self.state = state
        self.leadership = Leadership.of(state.engine, "notebooks")
        self.fleet = NotebookFleet(
            state.settings.layout.notebooks,
            state.settings.url,
            state.token,
            POLICY,
            state.artifacts,
            state.settings.orphan_grace_s,
        )
        self.forwarder = Forwarder(timeout_s=3600.0)  # the proxy's; opened on the loop
        self._adopted = False
        self._activity_at: dict[str, float] = {}

    def tick(self) -> None:
        if self.state.home.lost() is not None or not self.leadership.held():
            return
        if not self._adopted:
            self.fleet.adopt()
            self._adopted = True
        self.fleet.check()
        with transaction(self.state.sessions) as session:
            rows = {row.name: row for row in notebooks.listed(session)}
            for row in rows.values():
                self._turn(session, row)
        for proc in self.fleet.all():
            if proc.name not in rows:  # deleted while no server ran, or by another
                self._end(proc)
                if proc.pid is None or not proc.alive():
                    self.fleet.forget(proc.name, remove_files=True)
        # a starting JupyterLab is looked at every 0.1 s, so its page opens when it answers
        starting = any(p.pid is not None and not p.ever_healthy for p in self.fleet.all())
        self.interval = STARTING_INTERVAL_S if starting else self.idle_interval

    def _turn(self, session: Session, row: NotebookRow) -> None:
        if row.status in ("Pending", "InService"):
            self._keep_running(row)
        elif row.status in ("Stopping", "Deleting"):
            proc = self.fleet.get(row.name)
            if proc is not None and proc.pid is not None and proc.alive():
                self._end(proc)
                return
            if row.status == "Deleting":
                self.fleet.forget(row.name, remove_files=True)
                session.delete(row)
                log.info("notebook %s deleted with its files", row.name)
                return
            self.fleet.forget(row.name, remove_files=False)
            notebooks.set_status(row, "Stopped", row.status_reason or "Stopped on request")
        else:  # Stopped, Failed: nothing of it runs
            proc = self.fleet.get(row.name)
            if proc is not None and proc.pid is not None and proc.alive():
                self._end(proc)

    def _end(self, proc: NotebookProcess) -> None:
        if proc.retire_at is None:
            proc.retire(POLICY)
        proc.drain(time.monotonic(), POLICY)

    def _keep_running(self, row: NotebookRow) -> None:
        proc = self.fleet.process(row.name)
        if proc.retire_at is not None:  # stopped before, asked to start again
            if proc.pid is not None and proc.alive():
                self._end(proc)
                return
            self.fleet.forget(row.name, remove_files=False)
            proc = self.fleet.process(row.name)
        if proc.failed_starts >= MAX_FAILED_STARTS:
            notebooks.set_status(row, "Failed", proc.failure)
            self.fleet.forget(row.name, remove_files=False)
            return
        if proc.pid is None:
            if time.monotonic() < proc.retry_at:
                self._say(row, "Pending", f"Restarting after a failed start: {proc.failure}")
                return
            missing = available()
            if missing is not None:
                notebooks.set_status(row, "Failed", missing)
                return
            try:
                waiting = self.fleet.start(proc, row.source_uri, row.requirements)
            except Exception as exc:  # an env that would not build, a start that failed
                notebooks.set_status(row, "Failed", f"Could not start: {exc}")
                self.fleet.forget(row.name, remove_files=False)
                return
            row.restarts = proc.restarts
            self._say(row, "Pending", waiting or "Starting JupyterLab")
            return
        if not proc.healthy:
            if row.status != "Pending" and not proc.ever_healthy:
                self._say(row, "Pending", "Starting JupyterLab")
            return
        if row.status != "InService":
            notebooks.set_status(row, "InService")
        self._watch_activity(row, proc)

    def _say(self, row: NotebookRow, status: str, reason: str) -> None:
        if (row.status, row.status_reason) != (status, reason):
            notebooks.set_status(row, status, reason)

    def _watch_activity(self, row: NotebookRow, proc: NotebookProcess) -> None:
        now = time.monotonic()
        every = min(ACTIVITY_EVERY_S, (row.idle_timeout_s or ACTIVITY_EVERY_S) / 4)
        if now - self._activity_at.get(row.name, 0.0) < every:
            return
        self._activity_at[row.name] = now
        seen = self.fleet.last_activity(proc)
        if seen is None:
            return
        if row.last_activity_at is None or _aware(row.last_activity_at) != seen:
            row.last_activity_at = seen
        if row.idle_timeout_s is None:
            return
        idle = (utcnow() - seen).total_seconds()
        if idle > row.idle_timeout_s:
            notebooks.set_status(
                row,
                "Stopping",
                f"Stopped after {_idle(idle)} without activity (idle_timeout_s "
                f"{row.idle_timeout_s}); its files are kept: start it again to go on.",
            )
            self._end(proc)

    def close(self) -> None:
        super().close()
        self.fleet.close()
        self.leadership.release()

    async def stop(self) -> None:
        self.close()
        await self.forwarder.aclose()


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
