"""Freeing space: deleting a run with all it owns, and collecting what finished jobs leave.

Both work on a full disk. They only read the database and remove files until the last
steps (deleting the run's rows, the write-ahead log checkpoint, VACUUM), which need
little room, or the room the first steps made.
"""

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from naiad.core.status import Status
from naiad.executors.base import Executor
from naiad.schemas.maintenance import GcResult
from naiad.services.jobs import handle as job_handle
from naiad.settings import Settings
from naiad.store import runs
from naiad.store.artifacts import ArtifactStore
from naiad.store.db import checkpoint, disk_full, transaction, vacuum
from naiad.store.disk import age, children, remove, subdirs
from naiad.store.tables import JobRow, MetricBatchRow, RunRow

log = logging.getLogger("naiad.maintenance")

TORN_SPOOL_AGE_S = 3600.0  # a half-written spool file this old has no writer left
_collecting = threading.Lock()  # the hourly pass and `naiad gc` never remove the same files


# -- deleting a run ---------------------------------------------------------------------------
def delete_run(
    sessions: sessionmaker[Session], store: ArtifactStore, executor: Executor, run_id: str
) -> None:
    """Delete a run's rows (its job's too), then its artifacts and its job's files.

    The rows go first, in one transaction: if that fails (a full disk) nothing is gone.
    Files that cannot be removed afterwards are left to `naiad gc`, which finds them.
    """
    with transaction(sessions) as session:
        artifact_uri = runs.get_row(session, run_id).artifact_uri
        job = runs.delete(session, run_id)
        job_name = job.name if job is not None else None
        handle = job_handle(job, executor) if job is not None else None
    try:
        if artifact_uri == f"{store.uri.rstrip('/')}/runs/{run_id}/artifacts":
            store.delete(f"runs/{run_id}")
        else:
            log.warning(
                "run %s: its artifacts at %s are not in this server's store", run_id, artifact_uri
            )
        if job_name is not None:
            store.delete(f"jobs/{job_name}")
        if handle is not None and executor.remove(handle) is None:
            log.warning("run %s is deleted; its job's files stay while it runs", run_id)
    except Exception as exc:  # the rows are gone already: an object store's error is no 500
        log.warning(
            "run %s is deleted, some of its files not (%s); `naiad gc` retries", run_id, exc
        )


# -- collecting garbage -----------------------------------------------------------------------
def collect_garbage(
    engine: Engine,
    sessions: sessionmaker[Session],
    store: ArtifactStore,
    executor: Executor,
    settings: Settings,
    older_than_days: float | None = None,
    vacuum_db: bool = False,
    truncate_wal: bool = True,
) -> GcResult:
    """Clear finished jobs' work directories older than ``older_than_days`` (default: the
    retention setting), drop spooled batches the server already has or can never take,
    remove files of runs and jobs deleted earlier, then checkpoint the database's log.

    ``truncate_wal`` cuts the log to nothing (it waits briefly for readers); the hourly
    pass leaves it off so it never holds up a request.
    """
    days = settings.job_retention_days if older_than_days is None else older_than_days
    cutoff = time.time() - days * 86400
    problems: list[str] = []
    with _collecting:
        with transaction(sessions) as session:
            jobs = {
                name: (status, ended_at or created_at)
                for name, status, ended_at, created_at in session.execute(
                    select(JobRow.name, JobRow.status, JobRow.ended_at, JobRow.created_at)
                )
            }
            run_ids = set(session.scalars(select(RunRow.id)))
            gone = _Gone(sessions)
            work_dirs, work_bytes = _clear_work_dirs(executor, jobs, gone, cutoff, problems)
            spool_files, spool_bytes, waiting = _clear_spools(
                session, settings.layout.spool, run_ids, gone, problems
            )
        orphan_bytes = _clear_orphans(store, run_ids, set(jobs), gone, problems)
        wal_bytes = _database_step(lambda: checkpoint(engine, truncate_wal), problems, "log")
        vacuum_bytes = (
            _database_step(lambda: vacuum(engine), problems, "vacuum") if vacuum_db else None
        )
    return GcResult(
        freed_bytes=work_bytes + spool_bytes + orphan_bytes + wal_bytes + (vacuum_bytes or 0),
        older_than_days=days,
        work_dirs=work_dirs,
        work_dir_bytes=work_bytes,
        orphan_bytes=orphan_bytes,
        spool_files=spool_files,
        spool_bytes=spool_bytes,
        spool_waiting=waiting,
        wal_bytes=wal_bytes,
        vacuum_bytes=vacuum_bytes,
        problems=problems,
    )


class _Gone:
    """Asks the database again, just before removing a deleted run's or job's files: the
    list read at the start misses what was created since (ids and names recorded before
    any of their files were written, so a second look settles it)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions

    def run(self, run_id: str) -> bool:
        with transaction(self.sessions) as session:
            return session.get(RunRow, run_id) is None

    def job(self, name: str) -> bool:
        with transaction(self.sessions) as session:
            return session.scalar(select(JobRow.id).where(JobRow.name == name)) is None


def _epoch(moment: datetime) -> float:
    """SQLite hands back naive datetimes; they were stored in UTC."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _clear_work_dirs(
    executor: Executor,
    jobs: dict[str, tuple[str, datetime]],
    gone: _Gone,
    cutoff: float,
    problems: list[str],
) -> tuple[int, int]:
    """Empty finished jobs' directories (logs and final state stay); remove deleted jobs'."""
    cleared = freed = 0
    for name, held in executor.held().items():
        job = jobs.get(name)
        if job is None:  # the job's run was deleted: nothing will read these files
            if held.changed_at < cutoff and gone.job(name):
                removed = executor.remove(held.handle, problems)
                if removed is not None:
                    cleared, freed = cleared + 1, freed + removed
            continue
        status, ended = job
        if not Status(status).terminal or _epoch(ended) >= cutoff:
            continue
        emptied = executor.clear(held.handle, problems)
        if emptied:
            cleared, freed = cleared + 1, freed + emptied
    return cleared, freed


def _clear_spools(
    session: Session, root: Path, run_ids: set[str], gone: _Gone, problems: list[str]
) -> tuple[int, int, int]:
    """Remove spooled batches the server has, and those of deleted runs; count the rest.

    A batch waiting for `naiad runs sync` is a run's only copy of those points: it stays.
    """
    removed = freed = waiting = 0
    now = time.time()
    for run_dir in subdirs(root):
        files = children(run_dir)
        if run_dir.name in run_ids:
            names = {p.stem.split("-", 1)[-1]: p for p in files if p.suffix == ".json"}
            stored = (
                set(
                    session.scalars(
                        select(MetricBatchRow.batch_id).where(
                            MetricBatchRow.run_id == run_dir.name,
                            MetricBatchRow.batch_id.in_(list(names)),
                        )
                    )
                )
                if names
                else set()
            )
            doomed = [names[b] for b in stored]
            doomed += [p for p in files if p.suffix == ".tmp" and age(p, now) > TORN_SPOOL_AGE_S]
            waiting += len(names) - len(stored)
        elif gone.run(run_dir.name):
            doomed = files
        else:
            continue
        for path in doomed:
            freed += remove(path, problems)
            removed += not path.exists()
        with contextlib.suppress(OSError):
            run_dir.rmdir()  # only once it is empty
    return removed, freed, waiting


def _clear_orphans(
    store: ArtifactStore, run_ids: set[str], job_names: set[str], gone: _Gone, problems: list[str]
) -> int:
    """Artifacts of runs and jobs deleted before deleting removed them too."""
    freed = 0
    for top, alive, is_gone in (("runs", run_ids, gone.run), ("jobs", job_names, gone.job)):
        try:
            entries = [info for info in store.list(top) if info.is_dir]
        except Exception as exc:  # OSError here, botocore's errors on S3
            problems.append(f"Could not list {store.uri}/{top}: {_reason(exc)}.")
            continue
        for info in entries:
            name = info.path.rsplit("/", 1)[-1]
            if name in alive or not is_gone(name):
                continue
            try:
                size = sum(i.size or 0 for i in store.list(info.path, recursive=True))
                store.delete(info.path)
            except Exception as exc:
                where = f"{store.uri}/{info.path}"
                problems.append(f"Could not remove {where}: {_reason(exc)}.")
                continue
            freed += size
    return freed


def _database_step(step: Callable[[], int], problems: list[str], what: str) -> int:
    """Run a checkpoint or VACUUM; a failure becomes a sentence in ``problems``."""
    try:
        return step()
    except DBAPIError as exc:
        reason = "the disk is full" if disk_full(exc) else str(exc.orig).strip()
        if what == "log":
            problems.append(
                f"The database's write-ahead log could not be folded into the database "
                f"({reason}); free some space and run `naiad gc` again."
            )
        else:
            problems.append(
                f"VACUUM could not finish ({reason}); it needs free space about the size of "
                "the database while it rewrites it."
            )
        return 0


def _reason(exc: Exception) -> str:
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
