"""A job's working directory: the SageMaker container layout plus the supervisor's files.

The executor (in the server) and the supervisor (beside the job) talk only through
these files, so either side can restart and pick up where the other left off:
``spec.json`` (what to run), ``state.json`` (how it is going, written atomically),
``supervisor.pid`` and ``stop`` (a request the supervisor honours).
"""

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from naiad.executors.base import GangPlace, LaunchSpec, Phase

SUPERVISOR_MODULE = "naiad.executors.supervisor.main"
WARM_MODULE = "naiad.executors.supervisor.warm"
# Set in the environment of every process a job starts; names the job's directory.
JOB_DIR_ENV = "NAIAD_JOB_DIR"


@dataclasses.dataclass(frozen=True)
class WorkDir:
    """Named paths under one job's directory (SageMaker's /opt/ml, rooted at ``root``).

    A job on several hosts gives each its own ``input/``, ``model/`` and ``output/`` under
    ``hosts/<host>/`` (``for_host``); ``code/``, ``checkpoints/``, the logs and the
    supervisor's files stay at the root, one for the whole job.
    """

    root: Path
    host: str | None = None  # None: the job's one host, laid out at the root

    def for_host(self, host: str) -> "WorkDir":
        return WorkDir(self.root, host)

    @property
    def base(self) -> Path:
        """Where this host's container layout (input/, model/, output/) lives."""
        return self.root if self.host is None else self.hosts / self.host

    @property
    def hosts(self) -> Path:
        return self.root / "hosts"

    @property
    def channels(self) -> Path:
        """Channels staged once for several hosts, which link to them."""
        return self.root / "channels"

    # -- the supervisor's files -------------------------------------------------------
    @property
    def spec_file(self) -> Path:
        return self.root / "spec.json"

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def pid_file(self) -> Path:
        return self.root / "supervisor.pid"

    @property
    def stop_file(self) -> Path:
        return self.root / "stop"

    @property
    def grant_file(self) -> Path:
        """An elastic job's hosts the executor has room for now (``{"nodes": n}``)."""
        return self.root / "grant.json"

    @property
    def rounds(self) -> Path:
        """Where rank 0 of each elastic round says its world size and resumed step."""
        return self.root / "rounds"

    @property
    def supervisor_log(self) -> Path:
        return self.root / "supervisor.log"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def job_log(self) -> Path:
        return self.logs / "job.log"

    def attempt_logs(self, attempt: int) -> Path:
        return self.logs / f"attempt-{attempt}"

    # -- the container layout the script sees -----------------------------------------
    @property
    def input(self) -> Path:
        return self.base / "input"

    @property
    def config(self) -> Path:
        return self.input / "config"

    @property
    def data(self) -> Path:
        return self.input / "data"

    @property
    def model(self) -> Path:
        return self.base / "model"

    @property
    def output(self) -> Path:
        return self.base / "output"

    @property
    def output_data(self) -> Path:
        return self.output / "data"

    @property
    def failure_file(self) -> Path:
        return self.output / "failure"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def code(self) -> Path:
        return self.root / "code"

    @property
    def naiad_home(self) -> Path:
        return self.root / ".naiad-home"

    @property
    def private_python(self) -> Path:
        """A command job's own virtualenv, layered over the server's."""
        return self.root / ".python"


def write_text_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    """Write via a temp file and rename, so a reader never sees half a file (owner-only:
    job files live in the Naiad home, and spec.json holds the server token)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: Any, mode: int = 0o600) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True), mode)


def read_json(path: Path) -> dict[str, Any] | None:
    """The object in ``path``, or None when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def phase_of(state: dict[str, Any] | None) -> Phase | None:
    """The phase ``state.json`` records, or None when it records none we know."""
    phase = state.get("phase") if state else None
    return Phase(phase) if isinstance(phase, str) and phase in Phase.__members__.values() else None


def ended(state: dict[str, Any] | None) -> bool:
    """Whether ``state.json`` records a final phase (a submit then never runs the job again)."""
    phase = phase_of(state)
    return phase is not None and phase.terminal


def spec_to_json(spec: LaunchSpec) -> dict[str, Any]:
    """A launch spec as JSON: in ``spec.json``, or sent to a gang's host on another machine."""
    data = dataclasses.asdict(spec)
    data["work_dir"] = str(spec.work_dir)
    return data


def spec_from_json(data: dict[str, Any]) -> LaunchSpec:
    """``spec_to_json`` read back; fields a later version dropped are ignored."""
    known = {f.name for f in dataclasses.fields(LaunchSpec)}
    data = {k: v for k, v in data.items() if k in known}
    data["work_dir"] = Path(data["work_dir"])
    if isinstance(data.get("gang"), dict):
        data["gang"] = GangPlace(**data["gang"])
    return LaunchSpec(**data)


def write_spec(spec: LaunchSpec) -> None:
    """What the supervisor runs, read back after a restart."""
    write_json_atomic(WorkDir(Path(spec.work_dir)).spec_file, spec_to_json(spec))


def read_spec(root: Path) -> LaunchSpec:
    data = read_json(WorkDir(root).spec_file)
    if data is None:
        raise FileNotFoundError(f"{WorkDir(root).spec_file} is missing or not valid JSON.")
    return spec_from_json(data)


def read_grant(root: Path, fewest: int) -> int:
    """The hosts an elastic job has been granted (``grant.json``, which the local executor
    writes and the supervisor follows); ``fewest`` until it says more."""
    nodes = (read_json(WorkDir(root).grant_file) or {}).get("nodes")
    return nodes if isinstance(nodes, int) and nodes > fewest else fewest


def start_time(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot): with the pid, it names one process ever."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def write_pid(path: Path, pid: int) -> None:
    """``pid start_time``, atomically: a poller reading mid-write would take the job for lost."""
    write_text_atomic(path, f"{pid} {start_time(pid) or ''}".strip())


def proc_alive(pid: int) -> bool:
    """True for a live process; a zombie (exited, not yet reaped) is dead."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def supervisor_pid(root: Path) -> int | None:
    """The pid of this job's live supervisor, or None; a reused pid never counts.

    The pid file records the process's start time, so a new process that got the same
    pid is told apart (a warm supervisor's command line does not name the job).
    """
    try:
        fields = WorkDir(root).pid_file.read_text().split()
        pid = int(fields[0])
    except (OSError, ValueError, IndexError):
        return None
    if not proc_alive(pid):
        return None
    if len(fields) > 1:
        return pid if str(start_time(pid)) == fields[1] else None
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    want = [SUPERVISOR_MODULE.encode(), str(root).encode()]
    return pid if all(w in argv for w in want) else None


def job_processes(root: Path) -> list[int]:
    """Live processes the job started, orphans included: how its leftovers are found.

    A process is the job's when its environment names the job's directory
    (``NAIAD_JOB_DIR``, which the supervisor gives everything it starts: pip, the script,
    torchrun and its workers, their children), or when it is a script forked from the
    warm standby (whose ``/proc/<pid>/environ`` is still the standby's) running in the
    job's directory or below it (scripts run in ``code/``). A person's shell or editor
    that merely sits in the directory is never taken for the job's.
    """
    want = os.path.realpath(root)
    marker = f"{JOB_DIR_ENV}={want}".encode()
    warm = WARM_MODULE.encode()
    found = []
    for entry in os.listdir("/proc"):
        if not (entry.isascii() and entry.isdigit()) or int(entry) == os.getpid():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
            ours = marker in Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            if not ours and (cwd == want or cwd.startswith(want + os.sep)):
                ours = warm in Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # gone, or another user's (which we could not signal anyway)
        if ours and proc_alive(int(entry)):
            found.append(int(entry))
    return found
