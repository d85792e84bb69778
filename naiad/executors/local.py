"""Jobs as processes on this machine, each under its own detached supervisor.

The executor keeps no state of its own: everything is in the job's directory
(``spec.json``, ``state.json``, ``supervisor.pid``, ``stop``), so a restarted server
polls, re-attaches to or stops the jobs a previous server started.
"""

import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from naiad.executors import local_files
from naiad.executors.base import (
    Capacity,
    ExecState,
    JobHandle,
    LaunchSpec,
    Phase,
)
from naiad.executors.capacity import Slots
from naiad.executors.local_files import exec_state
from naiad.executors.supervisor.workdir import (
    SUPERVISOR_MODULE,
    WARM_MODULE,
    WorkDir,
    ended,
    job_processes,
    read_grant,
    read_json,
    supervisor_pid,
    write_json_atomic,
    write_pid,
    write_spec,
)

LOG_TAIL_CHARS = 600
FORK_TIMEOUT_S = 5.0  # for the standby to answer a forked supervisor's pid


def _root(spec: LaunchSpec) -> Path:
    return Path(os.path.realpath(spec.work_dir))


def _tail(path: Path, chars: int = LOG_TAIL_CHARS) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - chars))
            return f.read().decode(errors="replace").strip()
    except OSError:
        return ""


class LocalExecutor(local_files.JobFolders):
    """Runs each job's supervisor as a detached process (its own session) on this machine.

    Handles name a job's directory relative to ``root`` (the server's jobs folder), so
    they hold when the Naiad home moves. With ``warm``, once opened, one standby waits
    with torch already imported and forks each job's supervisor (``supervisor/warm.py``),
    so every job starts its script seconds sooner.
    """

    name = "local"

    def __init__(
        self,
        root: Path | None = None,
        slots: int | None = None,
        warm: bool = False,
    ) -> None:
        self._root = Path(os.path.realpath(root)) if root is not None else None
        self._slots = slots or os.cpu_count() or 1
        self._warm = warm
        self._children: dict[Path, subprocess.Popen[bytes]] = {}
        self._standby: subprocess.Popen[bytes] | None = None
        self._standby_ready = False
        self._lock = threading.Lock()
        self._closed = False

    @property
    def slots(self) -> int:
        return self._slots

    @property
    def nodes(self) -> int:
        """Hosts are emulated here, each its own process tree: as many as there are slots."""
        return self._slots

    def capacity(self, running: Sequence[LaunchSpec]) -> Slots:
        busy = sum(self._granted(spec) * spec.processes_per_node for spec in running)
        return Slots(free=self._slots - busy, total=self._slots)

    def _granted(self, spec: LaunchSpec) -> int:
        """The hosts a job holds: ``nodes``, or what an elastic job has grown to."""
        return read_grant(_root(spec), spec.nodes) if spec.elastic else spec.nodes

    def grow(self, spec: LaunchSpec, capacity: Capacity) -> None:
        """Hand an elastic job each free host it can use, up to ``max_nodes``; its
        supervisor starts one more torchrun agent per host granted."""
        granted = have = self._granted(spec)
        while granted < (spec.max_nodes or 0):
            if capacity.take(1, spec.processes_per_node, spec.gpus) is not None:
                break
            granted += 1
        root = _root(spec)
        if granted > have and root.is_dir():
            write_json_atomic(WorkDir(root).grant_file, {"nodes": granted})

    def open(self) -> None:
        """Start the warm standby, when asked for one."""
        with self._lock:
            self._closed = False
        if self._warm:
            self._start_standby()

    # -- handles: a job's directory -----------------------------------------------------

    def _reap(self) -> None:
        """Collect supervisors this process started that have exited (no zombies in the server)."""
        for root, child in list(self._children.items()):
            if child.poll() is not None:
                del self._children[root]

    def submit(self, spec: LaunchSpec) -> JobHandle:
        """Start the supervisor unless one is alive or the job already ended (idempotent)."""
        self._reap()
        root = _root(spec)
        wd = WorkDir(root)
        earlier = read_json(wd.spec_file)
        if earlier is not None and earlier.get("run_id") != spec.run_id:
            # A deleted job's leftovers: this is a new job of that name. Its supervisor may
            # still be exiting, a moment after recording the end.
            deadline = time.monotonic() + 5.0
            while supervisor_pid(root) is not None:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{root} still runs an earlier job of the same name")
                time.sleep(0.05)
            shutil.rmtree(root)
        if supervisor_pid(root) is not None or ended(read_json(wd.state_file)):
            return self._handle(spec)
        root.mkdir(parents=True, exist_ok=True)
        write_spec(spec)
        if spec.elastic:  # it starts on the fewest; grow() hands it more as room frees
            write_json_atomic(wd.grant_file, {"nodes": spec.nodes})
        pid = self._fork_warm(root)
        if pid is None:
            with open(wd.supervisor_log, "ab") as log:
                child = subprocess.Popen(
                    [sys.executable, "-m", SUPERVISOR_MODULE, str(root)],
                    cwd="/",
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # a signal to the server's group never reaches it
                    close_fds=True,
                )
            self._children[root] = child
            pid = child.pid
        write_pid(wd.pid_file, pid)
        return self._handle(spec)

    # -- the warm standby ---------------------------------------------------------------
    def _start_standby(self) -> None:
        with self._lock:
            if self._closed or (self._standby is not None and self._standby.poll() is None):
                return
            self._standby = subprocess.Popen(
                [sys.executable, "-m", WARM_MODULE],
                cwd="/",
                stdin=subprocess.PIPE,  # closed by us, or by our death: then it exits
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                close_fds=True,
            )

    def _ready(self, standby: subprocess.Popen[bytes]) -> bool:
        """Whether the standby has done its imports (its ``ready`` line read once)."""
        if not self._standby_ready:
            assert standby.stdout is not None
            if not select.select([standby.stdout], [], [], 0)[0]:
                return False
            self._standby_ready = standby.stdout.readline().strip() == b"ready"
        return self._standby_ready

    def _fork_warm(self, root: Path) -> int | None:
        """The pid of the supervisor the standby forked for ``root``; None when there is
        no standby ready (still importing, or gone: then a new one starts)."""
        if not self._warm:
            return None
        with self._lock:
            standby = self._standby
            if standby is None or standby.poll() is not None:
                alive = False
            else:
                if not self._ready(standby):
                    return None  # still importing: this job starts cold
                assert standby.stdin is not None and standby.stdout is not None
                try:
                    standby.stdin.write(f"{root}\n".encode())
                    standby.stdin.flush()
                    answered = select.select([standby.stdout], [], [], FORK_TIMEOUT_S)[0]
                    line = standby.stdout.readline() if answered else b""
                    return int(line)
                except (OSError, ValueError):
                    alive = False  # it died, or hangs: replaced below
        if not alive:
            self._drop_standby()
            self._start_standby()
        return None

    def warm_ready(self) -> bool:
        """Whether the next job would start warm: the standby has said ``ready``."""
        with self._lock:
            standby = self._standby
            if standby is None or standby.stdout is None or standby.poll() is not None:
                return False
            return self._ready(standby)

    def wait_warm(self, timeout: float) -> bool:
        """Block until the standby has done its imports (for tests and benchmarks)."""
        deadline = time.monotonic() + timeout
        while not self.warm_ready():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def close(self) -> None:
        """End the standby (it holds no job: the supervisors it forked are not its)."""
        with self._lock:
            self._closed = True
        self._drop_standby()

    def _drop_standby(self) -> None:
        with self._lock:
            standby, self._standby, self._standby_ready = self._standby, None, False
        if standby is not None:
            standby.kill()
            standby.wait()
            for pipe in (standby.stdin, standby.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()

    def poll(self, spec: LaunchSpec) -> ExecState:
        """What ``state.json`` says; after a supervisor's death, what became of its processes."""
        self._reap()
        root = _root(spec)
        wd = WorkDir(root)
        state = read_json(wd.state_file)
        if ended(state):
            return exec_state(state or {})
        alive = supervisor_pid(root) is not None
        if alive:
            return exec_state(state) if state else ExecState(Phase.STARTING)
        state = read_json(wd.state_file)  # it may have finished between the two reads
        if ended(state):
            return exec_state(state or {})
        if not wd.spec_file.exists():
            return ExecState(Phase.LOST, reason=f"The job was never submitted here ({root}).")
        return _orphaned(wd, state or {})

    def stop(self, spec: LaunchSpec, grace_s: float) -> None:
        """Ask the supervisor to stop the job (file + SIGTERM); it ends the training processes.

        Without a supervisor, SIGTERM what it left; ``poll`` SIGKILLs them after ``grace_s``
        and records the stop once they are gone.
        """
        root = _root(spec)
        wd = WorkDir(root)
        state = read_json(wd.state_file)
        if ended(state):
            return
        if root.is_dir():
            write_json_atomic(wd.stop_file, {"grace_s": grace_s, "requested_at": time.time()})
        pid = supervisor_pid(root)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
            return
        if wd.spec_file.exists() and root.is_dir():
            _signal(job_processes(root), signal.SIGTERM)
            _orphaned(wd, state or {})


def _orphaned(wd: WorkDir, state: dict[str, Any]) -> ExecState:
    """A job whose supervisor died before recording a final state.

    Its processes can no longer be stopped, limited or collected by anyone, so they are
    ended (SIGKILL; after a stop request, once its grace period is over), and until they
    are gone the job stays in its last phase: it still holds its slot, and ``stop``
    still reaches it. Then it is stopped, if that was asked, or lost.
    """
    leftovers = job_processes(wd.root)
    stop = read_json(wd.stop_file)
    if leftovers:
        if stop is None or time.time() >= _number(stop, "requested_at") + _number(stop, "grace_s"):
            _signal(leftovers, signal.SIGKILL)
        return exec_state(state) if state else ExecState(Phase.STARTING)
    if stop is not None:
        stopped = {
            **state,
            "phase": Phase.STOPPED.value,
            "reason": "Stopped on request (its supervisor had already exited)",
            "updated_at": time.time(),
        }
        write_json_atomic(wd.state_file, stopped)
        return exec_state(stopped)
    tail = _tail(wd.supervisor_log)
    fate = (
        "its training processes were ended with it"
        if state.get("pid")
        else "no training process had started"
    )
    return ExecState(
        phase=Phase.LOST,
        reason=(
            "The job's supervisor exited without recording a final state "
            f"(killed, or the machine restarted); {fate}. "
            + (f"The end of {wd.supervisor_log}:\n{tail}" if tail else "")
        ).strip(),
        attempt=int(state.get("attempt") or 0),
        started_at=_number(state, "started_at") or None,
    )


def _signal(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _number(data: dict[str, Any], key: str) -> float:
    value = data.get(key)
    return float(value) if isinstance(value, int | float) else 0.0
