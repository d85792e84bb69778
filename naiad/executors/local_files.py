"""What an executor answers from a job's directory on the server's machine: its log, its
spooled metric batches, and the space it takes once the job is over. The local executor's
jobs write there; the Ray executor keeps there its copy of what a job's hosts wrote."""

import os
import re
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

from naiad.core.home import HomeLayout
from naiad.executors.base import ExecState, Held, JobHandle, LaunchSpec, LogChunk, Phase
from naiad.executors.supervisor.workdir import WorkDir, phase_of, supervisor_pid
from naiad.schemas.metrics import MetricBatch
from naiad.store import disk

# What a cleared work directory keeps: `naiad jobs logs` reads the log there, and the
# final state tells a restarted server (and a repeated submit) that the job is over.
KEEP_IN_WORK_DIR = frozenset({"logs", "state.json", "spec.json", "supervisor.log"})


_RANKED = re.compile(r"(?:\[algo-\d+\] )?\[rank(\d+)\]")


def _rank_of(line: str) -> str | None:
    match = _RANKED.match(line)
    return match[1] if match else None


def read_log(root: Path, offset: int, limit: int, rank: int | None) -> LogChunk:
    """Whole lines of ``logs/job.log`` from byte ``offset``; ``rank`` keeps that rank's."""
    path = WorkDir(root).job_log
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(limit)
            size = os.fstat(f.fileno()).st_size
    except FileNotFoundError:
        return LogChunk(text="", offset=offset, eof=True)
    cut = data.rfind(b"\n") + 1 if len(data) == limit else len(data)  # whole lines only
    text = data[:cut].decode(errors="replace")
    if rank is not None:  # "[rank2] ..." or, from a host after the first, "[algo-2] [rank2] ..."
        text = "".join(line for line in text.splitlines(True) if _rank_of(line) == str(rank))
    return LogChunk(text=text, offset=offset + cut, eof=offset + cut >= size)


def spooled_metrics(root: Path, run_id: str) -> Iterator[tuple[Path, MetricBatch]]:
    """The batches the SDK spilled under the job's Naiad home, with their files."""
    spool = HomeLayout(WorkDir(root).naiad_home).spool / run_id
    for path in sorted(spool.glob("*.json")) if spool.is_dir() else []:
        try:
            batch = MetricBatch.model_validate_json(path.read_bytes())
        except (OSError, ValueError):
            continue  # a torn or foreign file: nothing anyone can store
        yield path, batch


def held(jobs_root: Path) -> dict[str, float]:
    """Each job directory under ``jobs_root`` with the time it last changed."""
    found = {}
    for entry in disk.subdirs(jobs_root):
        try:
            found[entry.name] = entry.lstat().st_mtime
        except FileNotFoundError:
            continue
    return found


def clear(root: Path, problems: list[str]) -> int | None:
    """Empty a finished job's directory but for what ``KEEP_IN_WORK_DIR`` names."""
    if supervisor_pid(root) is not None:
        return None  # something still runs there, whatever the database says
    return sum(
        disk.remove(child, problems)
        for child in disk.children(root)
        if child.name not in KEEP_IN_WORK_DIR
    )


def remove(root: Path, problems: list[str] | None) -> int | None:
    if supervisor_pid(root) is not None:
        return None
    return disk.remove(root, problems) if root.is_dir() else 0


def exec_state(state: dict[str, Any]) -> ExecState:
    """What a job's ``state.json`` (or its copy) says, as an ``ExecState``."""

    def number(key: str) -> float | None:
        value = state.get(key)
        return float(value) if isinstance(value, int | float) else None

    exit_code = state.get("exit_code")
    return ExecState(
        phase=phase_of(state) or Phase.STARTING,
        reason=state.get("reason"),
        attempt=int(state.get("attempt") or 0),
        started_at=number("started_at"),
        exit_code=exit_code if isinstance(exit_code, int) else None,
        events=tuple(e for e in state.get("events") or () if isinstance(e, dict)),
    )


class JobFolders:
    """The ``Executor`` methods answered from the jobs' directories under ``_root`` (a
    handle's id is a directory relative to it, or an absolute path)."""

    name: str
    _root: Path | None

    def _handle(self, spec: LaunchSpec) -> JobHandle:
        """The job's directory relative to ``_root``, so a handle holds when the home moves."""
        root = Path(os.path.realpath(spec.work_dir))
        if self._root is not None and root.is_relative_to(self._root):
            return JobHandle(self.name, str(root.relative_to(self._root)))
        return JobHandle(self.name, str(root))

    def _dir(self, handle: JobHandle) -> Path:
        if handle.executor != self.name:
            raise ValueError(
                f"A {handle.executor!r} job's handle, given to the {self.name} executor."
            )
        return (self._root or Path("/")) / handle.id  # an absolute id stays as it is

    def read_log(
        self, handle: JobHandle, offset: int, limit: int, rank: int | None = None
    ) -> LogChunk:
        return read_log(self._dir(handle), offset, limit, rank)

    def collect_metrics(self, handle: JobHandle, run_id: str) -> Iterator[MetricBatch]:
        for _, batch in spooled_metrics(self._dir(handle), run_id):
            yield batch

    def drop_metrics(self, handle: JobHandle, run_id: str, batch_ids: Collection[str]) -> None:
        wanted = set(batch_ids)
        for path, batch in spooled_metrics(self._dir(handle), run_id):
            if batch.batch_id in wanted:
                path.unlink(missing_ok=True)

    def find(self, job_name: str) -> JobHandle | None:
        if self._root is None or not (self._root / job_name).is_dir():
            return None
        return JobHandle(self.name, job_name)

    def held(self) -> dict[str, Held]:
        if self._root is None:
            return {}
        return {
            name: Held(JobHandle(self.name, name), changed_at)
            for name, changed_at in held(self._root).items()
        }

    def clear(self, handle: JobHandle, problems: list[str]) -> int | None:
        return clear(self._dir(handle), problems)

    def remove(self, handle: JobHandle, problems: list[str] | None = None) -> int | None:
        return remove(self._dir(handle), problems)
