"""start_run and the active run: what a training script uses to track itself."""

import atexit
import logging
import os
import threading
import traceback
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from naiad.core.errors import NaiadError, ServerError, ServerUnreachable
from naiad.core.home import HomeLayout, default_home
from naiad.schemas.common import ParamValue
from naiad.schemas.runs import Run
from naiad.sdk.client import Client
from naiad.sdk.pipeline import MetricPipeline
from naiad.sdk.spool import Spool
from naiad.sdk.system_metrics import SystemMonitor

log = logging.getLogger("naiad.sdk")

_active: list["ActiveRun"] = []
_active_lock = threading.Lock()


class ActiveRun:
    """A run being logged to. Use as a context manager, or call ``end()``."""

    def __init__(
        self,
        client: Client,
        run: Run | str,
        flush_interval: float = 1.0,
        system_metrics: bool = False,
        flush_timeout: float | None = None,
    ) -> None:
        self.client = client
        # A job's process attaches by id alone, so it can start logging while the server
        # is away (metrics spool); name and experiment are then unknown here.
        self.id = run if isinstance(run, str) else run.id
        self.name = None if isinstance(run, str) else run.name
        self.experiment = None if isinstance(run, str) else run.experiment
        run_id = self.id
        # A run attached by id (a job's) ends when its owner says so, not when this process exits.
        self.manages_status = not isinstance(run, str)
        self.flush_timeout = flush_timeout or float(os.environ.get("NAIAD_FLUSH_TIMEOUT", 60))
        spool = Spool(HomeLayout(default_home()).spool, run_id)
        self._metrics = MetricPipeline(
            lambda batch: client.runs.log_batch(run_id, batch, timeout=30),
            spool,
            flush_interval=flush_interval,
        )
        self._monitor = SystemMonitor(self._metrics.log).start() if system_metrics else None
        self.ended = False

    def log_metric(
        self, key: str, value: float, step: int | None = None, timestamp: float | None = None
    ) -> None:
        self._metrics.log({key: value}, step, timestamp)

    def log_metrics(
        self,
        metrics: Mapping[str, float],
        step: int | None = None,
        timestamp: float | None = None,
    ) -> None:
        """Queue points; returns in about a microsecond, never waiting on the network.

        ``step`` defaults to one past the previous call's step. Only a bad key or value
        raises; a down server or a full disk never does (see ``flush`` and ``end``).
        """
        self._metrics.log(metrics, step, timestamp)

    def skip_logged_steps(self) -> int:
        """Drop points at steps the run already has, key by key: a job resumed from a
        checkpoint repeats the steps since it, and its run keeps each step once (the
        first). Returns how many keys have a floor; 0 when the server cannot say."""
        try:
            summaries = self.client.runs.get(self.id).metrics
        except NaiadError as exc:
            log.warning("could not read run %s's latest steps (%s); repeats are kept", self.id, exc)
            return 0
        self._metrics.floor = {key: s.step for key, s in summaries.items()}
        return len(self._metrics.floor)

    def log_params(self, params: Mapping[str, ParamValue]) -> None:
        self.client.runs.log_params(self.id, dict(params))

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self.client.runs.set_tags(self.id, dict(tags))

    def log_artifact(self, local_path: str | Path, artifact_path: str | None = None) -> None:
        """Upload a file, or a directory's files, under ``artifact_path`` (default: its name)."""
        local = Path(local_path)
        base = artifact_path or local.name
        if local.is_dir():
            for file in sorted(p for p in local.rglob("*") if p.is_file()):
                rel = file.relative_to(local).as_posix()
                self.client.runs.upload_artifact(self.id, file, f"{base}/{rel}")
        else:
            self.client.runs.upload_artifact(self.id, local, base)

    def flush(self, timeout: float | None = None) -> bool:
        """Block until the server has every point logged so far (or the timeout passes).

        Returns False rather than raising when the server or the disk is in trouble.
        """
        return self._metrics.flush(self.flush_timeout if timeout is None else timeout)

    def persist(self) -> None:
        """Make every point logged so far durable: on the server, or spooled on disk when
        it is away (a checkpoint does this first, so a resume never skips a step)."""
        self._metrics.persist()

    def end(self, status: str = "Completed", reason: str | None = None) -> None:
        if self.ended:
            return
        self.ended = True
        with _active_lock:
            if self in _active:
                _active.remove(self)
        if self._monitor:
            self._monitor.stop()
        metrics = self._metrics
        if not metrics.close(self.flush_timeout):
            waiting = len(metrics.spool.pending())
            if waiting:
                log.warning(
                    "naiad: the server did not take every metric before the timeout; %d "
                    "batches are saved in %s and `naiad runs sync` sends them.",
                    waiting,
                    metrics.spool.dir,
                )
        if metrics.lost_points:
            log.warning(
                "naiad: %d metric points of run %s could not be stored: the server did not "
                "take them and there was no room for them in %s.",
                metrics.lost_points,
                self.id,
                metrics.spool.dir,
            )
        if not self.manages_status:
            return
        try:
            self.client.runs.update(self.id, status=status, status_reason=reason)
        except (ServerUnreachable, ServerError) as exc:
            try:
                metrics.spool.save_end(status, reason)
                later = "`naiad runs sync` will"
            except OSError as disk:
                later = f"it could not be saved for `naiad runs sync` either ({disk.strerror})"
            log.warning(
                "naiad: could not mark run %s %s (%s); %s.", self.id, status, exc.message, later
            )
        except NaiadError as exc:
            log.warning("naiad: could not mark run %s %s: %s", self.id, status, exc.message)

    def __enter__(self) -> "ActiveRun":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.end("Completed")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.end("Stopped", "Interrupted (Ctrl-C).")
        else:
            last = traceback.extract_tb(tb)[-1] if tb else None
            where = f" at {Path(last.filename).name}:{last.lineno}" if last else ""
            self.end("Failed", f"{exc_type.__name__}{where}: {exc}")


NOTEBOOK_ENV = "NAIAD_NOTEBOOK"  # set in a managed notebook's kernels: its name
NOTEBOOK_TAG = "naiad.source.notebook"


def start_run(
    experiment: str = "Default",
    name: str | None = None,
    params: Mapping[str, ParamValue] | None = None,
    tags: Mapping[str, str] | None = None,
    run_id: str | None = None,
    client: Client | None = None,
    system_metrics: bool = False,
    flush_interval: float = 1.0,
) -> ActiveRun:
    """Start a run (or attach to ``run_id`` / ``$NAIAD_RUN_ID``, as a job's run does)."""
    client = client or Client()
    run_id = run_id or os.environ.get("NAIAD_RUN_ID")
    run: Run | str
    if run_id:
        run = run_id
        if params:
            client.runs.log_params(run_id, dict(params))
        if tags:
            client.runs.set_tags(run_id, dict(tags))
    else:
        tags = dict(tags or {})
        if notebook := os.environ.get(NOTEBOOK_ENV):  # started in a managed notebook
            tags.setdefault(NOTEBOOK_TAG, notebook)
        run = client.runs.create(experiment, name, dict(params or {}), tags)
    active = ActiveRun(client, run, flush_interval, system_metrics)
    if run_id and run_id == os.environ.get("NAIAD_RUN_ID") and _resumed_job():
        active.skip_logged_steps()
    with _active_lock:
        _active.append(active)
    return active


def _resumed_job() -> bool:
    """A job's retry, or a worker of an elastic job (which re-forms from a checkpoint):
    its run may already hold the steps this process is about to repeat."""
    attempt = os.environ.get("NAIAD_ATTEMPT", "0")
    return (attempt.isdigit() and int(attempt) > 0) or bool(os.environ.get("NAIAD_ELASTIC_ROUNDS"))


def active_run() -> ActiveRun | None:
    """The most recently started run that has not ended."""
    with _active_lock:
        return _active[-1] if _active else None


@atexit.register
def end_open_runs() -> None:
    """End every run still open: their points flushed, the runs they own closed. At exit,
    so a script that never called end() loses nothing; the notebook runner calls it in the
    kernel before shutting it down, so a kernel stopped in a hurry loses nothing either."""
    for run in list(_active):
        run.end("Completed")
