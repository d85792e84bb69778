"""Start, watch and end one attempt's training processes.

One process runs the script with ``python``; more run it under torchrun, which tees
each rank's output into its own file and into the job log with a ``[rankN]`` prefix.
A job on several hosts starts one such tree per host, all joining one torch.distributed
world through the same master address and port (node rank = the host's index).
Both run in the job's ``code/`` directory, as SageMaker runs a script in its
``/opt/ml/code``. The processes get their own session, so a signal to them never
reaches the supervisor; torchrun puts its workers in sessions of their own, so ending
an attempt signals every descendant (the supervisor is their subreaper), not just one
group. The script (or torchrun) is SIGKILLed by the kernel if the supervisor dies;
torchrun's workers, which that cannot reach, are ended by the executor's poll.
"""

import contextlib
import ctypes
import functools
import importlib.util
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import psutil

from naiad.executors.supervisor.workdir import WorkDir

AGENT_RESTARTS = 10  # an elastic job's agent: worker failures survived (a lost peer is one)
ROUNDS_ENV = "NAIAD_ELASTIC_ROUNDS"  # naiad.runtime.elastic writes there
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
TAIL_LINES = 8
MAX_REASON_CHARS = 2000
TAIL_HEADER = ". Last lines of the log:\n"


def _load_prctl() -> Callable[..., int] | None:
    """Linux's ``prctl``, looked up once here: a child between fork and exec must not load it."""
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_prctl = _load_prctl()


def become_subreaper() -> None:
    """Orphaned grandchildren (torchrun's workers) reparent to us, so we can end and reap them."""
    if _prctl is not None:
        _prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def die_with_parent(parent: int) -> None:
    """In a new child of ``parent``: be SIGKILLed when it dies, so no script outlives it.

    A killed supervisor can neither stop nor collect its job, so a script left running
    would keep writing into a failed run. The kernel sends the signal when the thread
    that forked the child exits: attempts are started from the supervisor's main thread.
    If the parent died before the signal was armed, the child was reparented: die now.
    """
    if _prctl is not None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGKILL)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listen_ports(count: int) -> list[int]:
    """``count`` different ports free on 127.0.0.1 now, below the kernel's ephemeral range
    where it can: a TensorFlow worker binds its port seconds later (after importing
    TensorFlow), and a port from that range may meanwhile become some connection's
    local end. Each is checked by binding it."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 0
    candidates = random.sample(range(10000, low), min(low - 10000, 200)) if low > 10200 else []
    ports: list[int] = []
    for port in candidates:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == count:
            return ports
    while len(ports) < count:  # no room below the range: the kernel's choice
        if (port := free_port()) not in ports:
            ports.append(port)
    return ports


def notebook_runner() -> str:
    """The path of the script that runs a notebook job (``naiad.runtime.notebook_runner``),
    found without importing the job-side package here."""
    spec = importlib.util.find_spec("naiad.runtime.notebook_runner")
    assert spec is not None and spec.submodule_search_locations is not None
    return str(Path(next(iter(spec.submodule_search_locations))) / "__main__.py")


@dataclass(frozen=True)
class Rendezvous:
    """An elastic job's torchrun rendezvous: the store its agents meet in (hosted by the
    supervisor or the coordinator, ``rendezvous_store.py``) and the nodes it spans."""

    endpoint: str  # host:port
    run_id: str
    min_nodes: int
    max_nodes: int

    def arguments(self) -> list[str]:
        """torchrun's elastic options. A dead node is noticed after 3 missed one-second
        heartbeats; a round closes 3 s after its fewest nodes joined (more may join
        meanwhile); each agent survives ``AGENT_RESTARTS`` failures of its workers."""
        conf = "is_host=0,last_call_timeout=3,keep_alive_interval=1,keep_alive_max_attempt=3"
        return [
            "--nnodes",
            f"{self.min_nodes}:{self.max_nodes}",
            "--rdzv-backend",
            "c10d",
            "--rdzv-endpoint",
            self.endpoint,
            "--rdzv-id",
            self.run_id,
            "--rdzv-conf",
            conf,
            "--max-restarts",
            str(AGENT_RESTARTS),
            "--monitor-interval",
            "0.5",
        ]


def command(
    wd: WorkDir,
    entrypoint: str,
    args: list[str],
    procs: int,
    attempt: int,
    port: int,
    nodes: int = 1,
    node_rank: int = 0,
    master: str = "127.0.0.1",
    rendezvous: Rendezvous | None = None,
    runner: str | None = None,
) -> list[str]:
    """``python code/<entrypoint> args``, or torchrun for more than one process per node
    (on several nodes: this node's agent, of ``nodes``, by its rank), or for an elastic
    job this node's agent in the ``rendezvous``. ``runner``: a script that runs the
    entrypoint (``runner SCRIPT ARGS...``), as a TensorFlow job's does."""
    script = str(wd.code / entrypoint)
    if entrypoint.endswith(".ipynb"):  # a notebook: the runner executes it, cell by cell
        args = [script, *args]
        script = notebook_runner()
    elif runner is not None:
        args = [script, *args]
        script = runner
    if procs <= 1 and rendezvous is None:
        return [sys.executable, script, *args]
    if rendezvous is not None:
        world = rendezvous.arguments()
        args = [script, *args]  # each worker dies with its agent: a lost host takes them
        script = str(Path(__file__).with_name("elastic_worker.py"))
    else:
        ranks = ["--node-rank", str(node_rank)] if nodes > 1 else []
        world = ["--nnodes", str(nodes), *ranks, "--master-addr", master]
        world += ["--master-port", str(port), "--max-restarts", "0"]
    logs = wd.attempt_logs(attempt)
    if wd.host is not None:
        logs = logs / wd.host  # one torchrun per host: flatten_rank_logs gathers them
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        *world,
        "--nproc-per-node",
        str(procs),
        "--log-dir",
        str(logs),
        "--redirects",
        "3",
        "--tee",
        "3",
        script,
        *args,
    ]


def launch_env(
    env: dict[str, str],
    procs: int,
    port: int,
    nodes: int = 1,
    node_rank: int = 0,
    master: str = "127.0.0.1",
    rounds: Path | None = None,
) -> dict[str, str]:
    """torchrun sets the rank variables itself; one process per node gets the same by hand
    (its rank is its node's: one process on each of ``nodes`` hosts). An elastic job's
    agents (``rounds``: where rank 0 reports each round) learn the master at rendezvous."""
    env = dict(env)
    if rounds is not None:
        env["TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE"] = "[rank${rank}] "
        env[ROUNDS_ENV] = str(rounds)
        # Each round's rank 0 hosts its workers' store: with the agents' shared store
        # (torch's default) a node joining a running job waits forever for the master's
        # address, which the old rank 0 never writes again.
        env["TORCH_DISABLE_SHARE_RDZV_TCP_STORE"] = "1"
        return env
    env.update(SM_MASTER_ADDR=master, SM_MASTER_PORT=str(port))
    if procs > 1:
        env["TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE"] = "[rank${rank}] "
    else:
        env.update(
            RANK=str(node_rank),
            LOCAL_RANK="0",
            WORLD_SIZE=str(max(1, nodes)),
            LOCAL_WORLD_SIZE="1",
            GROUP_RANK=str(node_rank),
            MASTER_ADDR=master,
            MASTER_PORT=str(port),
        )
    return env


def start(
    cmd: list[str], env: dict[str, str], cwd: Path, log: Path | None
) -> subprocess.Popen[bytes]:
    """Start in a new session in ``cwd``, output appended to the job log (or to a pipe the
    caller reads, with ``log=None``), dying with us."""
    with open(log, "ab") if log is not None else contextlib.nullcontext() as out:
        return subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out if out is not None else subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=functools.partial(die_with_parent, os.getpid()),
        )


def descendants() -> list[psutil.Process]:
    """Every process below the supervisor: the training tree, orphans included."""
    try:
        return psutil.Process().children(recursive=True)
    except psutil.Error:
        return []


class Process(Protocol):
    """What ending an attempt needs of its main process: a Popen, or a forked child."""

    pid: int
    returncode: int | None

    def poll(self) -> int | None: ...

    def wait(self) -> int: ...


def _signal_all(proc: Process, sig: int, known: list[psutil.Process]) -> None:
    if proc.returncode is None:  # once reaped, its pid (and group id) may name someone else
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, sig)
    for p in known:
        with contextlib.suppress(psutil.Error):
            p.send_signal(sig)  # psutil checks the pid still names the same process


def reap_orphans(main_pids: int | Collection[int]) -> None:
    """Collect exited orphans so none lingers as a zombie (which ``kill(pid, 0)`` still finds).

    ``waitid(WNOWAIT)`` peeks without collecting, so the main processes (one per host) are
    left for Popen: collected here, Popen would take them for an exit with code 0.
    """
    mains = {main_pids} if isinstance(main_pids, int) else set(main_pids)
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if info is None or info.si_pid in mains:
            return
        with contextlib.suppress(ChildProcessError):
            os.waitpid(info.si_pid, os.WNOHANG)


def end_all(procs: Sequence[Process], grace_s: float) -> None:
    """SIGTERM the trees of ``procs`` (one per host) and every process below us, wait up to
    ``grace_s`` for them to go, then SIGKILL what is left: one grace period for all."""
    mains = [p.pid for p in procs]
    known = descendants()
    for proc in procs:
        _signal_all(proc, signal.SIGTERM, known)
    deadline = time.monotonic() + max(0.0, grace_s)
    while time.monotonic() < deadline:
        for proc in procs:
            proc.poll()
        reap_orphans(mains)
        now = descendants()
        known += [p for p in now if p not in known]
        exited = all(proc.returncode is not None for proc in procs)
        if exited and not any(_running(p) for p in now):
            break
        time.sleep(0.05)
    for proc in procs:
        _signal_all(proc, signal.SIGKILL, known + descendants())
    for proc in procs:
        proc.wait()
    for _ in range(40):  # SIGKILLed orphans take a moment to become reapable zombies
        reap_orphans(mains)
        if not [p for p in descendants() if _running(p)]:
            break
        time.sleep(0.05)
    reap_orphans(mains)


def _running(p: psutil.Process) -> bool:
    try:
        return p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def flatten_rank_logs(wd: WorkDir, attempt: int, first_rank: int = 0) -> None:
    """torchrun's ``<run>_xyz/attempt_0/<local rank>/stdout.log`` -> ``rank<rank>.stdout.log``
    (global ranks: a host's local ranks start at ``first_rank``). A host of several has its
    torchrun's folder under ``attempt-N/<host>/``; its files join the others' above it."""
    base = wd.attempt_logs(attempt)
    source = base / wd.host if wd.host else base
    if not source.is_dir():
        return
    for run_dir in [p for p in source.iterdir() if p.is_dir()]:
        for rank_dir in run_dir.glob("attempt_*/*"):
            if not (rank_dir.name.isascii() and rank_dir.name.isdigit()):
                continue
            rank = first_rank + int(rank_dir.name)
            for f in rank_dir.iterdir():
                f.replace(base / f"rank{rank}.{f.name}")
        shutil.rmtree(run_dir, ignore_errors=True)
    if source != base:
        shutil.rmtree(source, ignore_errors=True)


def describe_exit(code: int) -> str:
    """``exit code 1``, or ``killed by SIGKILL (exit code -9)``."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name} (exit code {code})"
    return f"exit code {code}"


_ROOT_RANK = re.compile(r"^\s*rank\s*:\s*(\d+)", re.MULTILINE)
_ROOT_CODE = re.compile(r"^\s*exitcode\s*:\s*(-?\d+)", re.MULTILINE)
_RANK_LINE = re.compile(r"^\[rank(\d+)\] ?(.*)$")


def failure_reason(wd: WorkDir, log_text: str, exit_code: int, procs: int) -> str:
    """A sentence a person can act on: the script's own ``output/failure``, else exit + log tail."""
    with contextlib.suppress(OSError):
        written = wd.failure_file.read_text(errors="replace").strip()
        if written:
            return _clip(written)
    what = describe_exit(exit_code)
    lines = [ln for ln in log_text.splitlines() if ln.strip() and not ln.startswith("[naiad]")]
    if procs > 1:
        cause = log_text.rsplit("Root Cause", 1)[-1] if "Root Cause" in log_text else ""
        rank, code = _ROOT_RANK.search(cause), _ROOT_CODE.search(cause)
        if rank and code:
            what = f"rank {rank[1]} failed with {describe_exit(int(code[1]))}"
            lines = [m[2] for ln in lines if (m := _RANK_LINE.match(ln)) and m[1] == rank[1]]
        else:
            lines = [m[2] for ln in lines if (m := _RANK_LINE.match(ln))] or lines
    tail = "\n".join(lines[-TAIL_LINES:])
    return _clip(f"{what}{TAIL_HEADER}{tail}" if tail else f"{what}.")


def _clip(text: str) -> str:
    return text if len(text) <= MAX_REASON_CHARS else "..." + text[-MAX_REASON_CHARS:]
