"""A job whose supervisor is SIGKILLed leaves nothing running, and ends only when it is so.

The script (or torchrun) dies with its supervisor; what that cannot reach (the script's
own children, torchrun's workers) the executor's poll ends. Until the last process is
gone the job keeps its phase, so the scheduler keeps its slot, and ``stop`` still
reaches it. Real supervisors, real processes, told apart by pid.
"""

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from naiad.executors.base import ExecState, LaunchSpec
from naiad.executors.local import LocalExecutor
from naiad.executors.supervisor.workdir import job_processes, proc_alive, read_json
from naiad.store.artifacts import open_artifact_store
from naiad.testing.jobs import launch_spec

# The script, a child in its group, and a loner in its own session (like torchrun's
# workers) that ignores SIGTERM; each pid is written once the loner is deaf to SIGTERM.
FAMILY = """
    import os, subprocess, sys, time

    child = subprocess.Popen(["sleep", "300"])
    deaf = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(300)"
    )
    loner = subprocess.Popen(
        [sys.executable, "-c", deaf], stdout=subprocess.PIPE, start_new_session=True
    )
    loner.stdout.readline()
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "..", "pids"), "w") as f:
        f.write(f"{os.getpid()} {child.pid} {loner.pid}\\n")
    time.sleep(300)
"""

# Under torchrun: each worker writes its pid, then sleeps.
WORKER = """
    import os, time
    path = os.path.join(os.environ["SM_MODEL_DIR"], "..", "rank" + os.environ["RANK"])
    with open(path, "w") as f:
        f.write(f"{os.getpid()}\\n")
    time.sleep(300)
"""


def make(tmp_path: Path, name: str, script: str, **fields: object) -> LaunchSpec:
    store = open_artifact_store((tmp_path / "artifacts").as_uri())
    return launch_spec(tmp_path, store, {"train.py": script}, name, **fields)


def read_pids(path: Path, timeout: float = 60.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text().endswith("\n")):
        assert time.monotonic() < deadline, f"{path} was not written within {timeout}s"
        time.sleep(0.05)
    return [int(p) for p in path.read_text().split()]


def kill_supervisor(spec: LaunchSpec) -> int:
    pid = int((spec.work_dir / "supervisor.pid").read_text().split()[0])
    os.kill(pid, signal.SIGKILL)
    return pid


def poll_until_ended(
    executor: LocalExecutor, spec: LaunchSpec, pids: list[int], timeout: float = 30.0
) -> ExecState:
    """Poll as the scheduler does; the job may end only once none of ``pids`` runs."""
    deadline = time.monotonic() + timeout
    while True:
        state = executor.poll(spec)
        if state.phase.terminal:
            running = [pid for pid in pids if proc_alive(pid)]
            assert running == [], f"the job is {state.phase} while {running} still run"
            return state
        assert state.phase == "running", state
        assert time.monotonic() < deadline, f"still running: {job_processes(spec.work_dir)}"
        time.sleep(0.05)


def wait_gone(pid: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while proc_alive(pid):
        assert time.monotonic() < deadline, f"{pid} outlived its supervisor"
        time.sleep(0.05)


@contextlib.contextmanager
def bystander(where: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Someone else's process sitting in the job's directory (a shell, an editor)."""
    proc = subprocess.Popen(["sleep", "300"], cwd=where)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_a_killed_supervisor_takes_its_training_processes_with_it(tmp_path: Path) -> None:
    spec = make(tmp_path, "lost", FAMILY)
    executor = LocalExecutor()
    executor.submit(spec)
    pids = read_pids(spec.work_dir / "pids")  # the script, its child, its loner
    assert executor.poll(spec).phase == "running"
    assert set(pids) <= set(job_processes(spec.work_dir))
    with bystander(spec.work_dir / "code") as other:
        assert other.pid not in job_processes(spec.work_dir)

        kill_supervisor(spec)
        wait_gone(pids[0])  # the kernel ends the script itself, before anyone polls
        state = poll_until_ended(executor, spec, pids)
        assert state.phase == "lost" and state.attempt == 0
        assert state.reason is not None
        assert state.reason.startswith(
            "The job's supervisor exited without recording a final state (killed, or the "
            "machine restarted); its training processes were ended with it."
        )
        assert job_processes(spec.work_dir) == []
        assert other.poll() is None  # not the job's: left alone


def test_a_killed_supervisor_takes_torchrun_and_its_workers_with_it(tmp_path: Path) -> None:
    spec = make(tmp_path, "lostddp", WORKER, processes_per_node=2)
    executor = LocalExecutor()
    executor.submit(spec)
    workers = [read_pids(spec.work_dir / f"rank{r}")[0] for r in (0, 1)]
    state = read_json(spec.work_dir / "state.json")
    assert state is not None
    torchrun = int(state["pid"])
    assert set(workers) | {torchrun} <= set(job_processes(spec.work_dir))

    kill_supervisor(spec)
    wait_gone(torchrun)
    state = poll_until_ended(executor, spec, [torchrun, *workers])
    assert state.phase == "lost"
    assert "its training processes were ended with it" in (state.reason or "")
    assert job_processes(spec.work_dir) == []


def test_stop_reaches_the_processes_of_a_killed_supervisor(tmp_path: Path) -> None:
    """A stop after the supervisor died: SIGTERM, SIGKILL after the grace, then Stopped."""
    spec = make(tmp_path, "stoplost", FAMILY)
    executor = LocalExecutor()
    executor.submit(spec)
    pids = read_pids(spec.work_dir / "pids")
    kill_supervisor(spec)
    wait_gone(pids[0])
    executor.stop(spec, grace_s=1.0)  # before any poll: the loner ignores the SIGTERM
    state = poll_until_ended(executor, spec, pids)
    assert state.phase == "stopped"
    assert state.reason == "Stopped on request (its supervisor had already exited)"
    assert job_processes(spec.work_dir) == []
    executor.stop(spec, grace_s=1.0)  # idempotent once stopped
    assert executor.poll(spec).phase == "stopped"


def test_a_killed_warm_supervisor_takes_its_forked_script_with_it(tmp_path: Path) -> None:
    executor = LocalExecutor(warm=True)
    executor.open()
    try:
        assert executor.wait_warm(timeout=60), "the standby never finished its imports"
        spec = make(tmp_path, "lostwarm", FAMILY)
        executor.submit(spec)
        pids = read_pids(spec.work_dir / "pids")
        forked = Path(f"/proc/{pids[0]}/cmdline").read_bytes().split(b"\0")
        assert b"naiad.executors.supervisor.warm" in forked  # the standby's, not train.py
        assert set(pids) <= set(job_processes(spec.work_dir))  # found all the same

        kill_supervisor(spec)
        wait_gone(pids[0])
        state = poll_until_ended(executor, spec, pids)
        assert state.phase == "lost"
        assert job_processes(spec.work_dir) == []
    finally:
        executor.close()
