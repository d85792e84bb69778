"""The Ray actors that run one job across a cluster: a coordinator and one host per node.

``Coordinator`` is a detached, named actor on the head node (it needs no CPU), so it
outlives the server that made it and a restarted server finds it by name. It reserves
the job's whole gang at once with a placement group (one bundle per node,
``STRICT_SPREAD``; ``PACK`` for one node), starts a ``NodeHost`` in each bundle, and
runs the attempts: every host's supervisor (``naiad.executors.supervisor``, as on one
machine, for its one host of the gang) starts torchrun with ``--nnodes``/
``--node-rank`` and node 0's address. It gathers the hosts' logs into one job log
(lines of hosts after the first behind ``[algo-N] ``, as the local executor writes
them), and when a host fails or its node is lost it ends the others and, with retries
left, reserves a new gang and resumes from the checkpoints every host mirrors to the
artifact store. The server reads everything through ``sync`` and keeps its own copy.

The coordinator keeps its files in a folder of its own machine; a host its work in a
folder of its own. Neither is a path the server reads.
"""

import contextlib
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any

from naiad.executors.base import GangPlace, LaunchSpec, Phase
from naiad.executors.supervisor import launch
from naiad.executors.supervisor.elastic import read_rounds
from naiad.executors.supervisor.workdir import (
    SUPERVISOR_MODULE,
    WorkDir,
    read_json,
    spec_from_json,
    spec_to_json,
    write_json_atomic,
    write_spec,
)

NAMESPACE = "naiad"
WATCH_S = 0.2
CALL_TIMEOUT_S = 10.0
LOG_CHUNK = 1024 * 1024
LOST_AFTER_S = 10.0  # a host's actor unreachable this long, its node alive: lost anyway
HOST_STOP_GRACE_S = 2.0  # the other hosts, once one failed: as the local supervisor
WORK_ROOT_ENV = "NAIAD_RAY_WORK_DIR"


def coordinator_name(run_id: str) -> str:
    return f"naiad-job-{run_id}"


def work_root() -> Path:
    """Where this machine keeps gang files: ``$NAIAD_RAY_WORK_DIR`` or the temp folder."""
    root = Path(os.environ.get(WORK_ROOT_ENV) or Path(tempfile.gettempdir()) / "naiad-ray")
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    return root


def bundle(spec: LaunchSpec) -> dict[str, float]:
    """One node's share of the gang: a CPU per process, and its GPUs."""
    res = {"CPU": float(max(1, spec.processes_per_node))}
    if spec.gpus:
        res["GPU"] = float(spec.gpus)
    return res


def _whole_lines(data: bytes, final: bool) -> bytes:
    return data if final else data[: data.rfind(b"\n") + 1]


class NodeHost:
    """One host of the gang, on the node Ray placed it: runs its supervisor, reads its log."""

    def __init__(self, folder: str) -> None:
        self.root = work_root() / folder
        self.proc: subprocess.Popen[bytes] | None = None
        self.rounds: dict[str, float] = {}  # an elastic job's round reports seen

    def place(self, processes: int = 1) -> dict[str, Any]:
        """Where this host is: its address, its machine's name, a free port there (rank 0's
        torch.distributed master) and one more per process (``workers``: where a TensorFlow
        job's processes listen), all different."""
        import ray

        ip = ray.util.get_node_ip_address()
        with contextlib.ExitStack() as held:
            ports = []
            for _ in range(1 + processes):
                s = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
                s.bind((ip, 0))
                ports.append(int(s.getsockname()[1]))
        node = ray.get_runtime_context().get_node_id()
        workers = [f"{ip}:{port}" for port in ports[1:]]
        return {"ip": ip, "node": node, "port": ports[0], "workers": workers}

    def start(self, spec_data: dict[str, Any]) -> None:
        """Lay out this host's own directory and start its supervisor, which dies with us."""
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(mode=0o700, parents=True)
        spec = replace(
            spec_from_json(spec_data),
            work_dir=self.root,
            max_retries=0,  # the coordinator retries the whole gang
        )
        write_spec(spec)
        with open(WorkDir(self.root).supervisor_log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", SUPERVISOR_MODULE, str(self.root)],
                cwd="/",
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=functools.partial(launch.die_with_parent, os.getpid()),
            )

    def poll(self, offset: int) -> dict[str, Any]:
        """Its state and its log from ``offset`` (whole lines until it has ended)."""
        wd = WorkDir(self.root)
        state = read_json(wd.state_file) or {}
        alive = self.proc is not None and self.proc.poll() is None
        ended = not alive and self.proc is not None
        try:
            with open(wd.job_log, "rb") as f:
                f.seek(offset)
                data = f.read(LOG_CHUNK)
                final = ended and not f.read(1)
        except FileNotFoundError:
            data, final = b"", ended
        if ended and Phase(state.get("phase", "starting")) in (Phase.STARTING, Phase.RUNNING):
            tail = b""
            with contextlib.suppress(OSError):
                tail = wd.supervisor_log.read_bytes()[-600:]
            state = {
                **state,
                "phase": "failed",
                "reason": "its supervisor exited without recording a final state: "
                + tail.decode(errors="replace").strip(),
            }
        rounds = read_rounds(wd.rounds, self.rounds)
        return {"state": state, "log": _whole_lines(data, final), "rounds": rounds}

    def spool(self, run_id: str) -> dict[str, bytes]:
        """The metric batches its processes could not send."""
        from naiad.core.home import HomeLayout

        folder = HomeLayout(WorkDir(self.root).naiad_home).spool / run_id
        found = {}
        for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            with contextlib.suppress(OSError):
                found[path.name] = path.read_bytes()
        return found

    def stop(self, grace_s: float) -> None:
        """Ask the supervisor to end the job's processes (as the local executor does)."""
        wd = WorkDir(self.root)
        if self.root.is_dir():
            write_json_atomic(wd.stop_file, {"grace_s": grace_s, "requested_at": time.time()})
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)

    def remove(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


class Coordinator:
    """One job's gang: placement, attempts, the merged log and the state the server reads."""

    def __init__(self, spec_data: dict[str, Any]) -> None:
        self.spec = spec_from_json(spec_data)
        self.root = work_root() / f"{self.spec.job_name}-{self.spec.run_id[:12]}"
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.wd = WorkDir(self.root)
        self.wd.logs.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()
        self.state: dict[str, Any] = {"phase": "starting", "attempt": 0, "placed": False}
        self.stop_grace: float | None = None
        self.spool: dict[str, bytes] = {}
        self.hosts: list[Any] = []
        self.lost: set[int] = set()  # hosts of this attempt whose actor is gone
        self.group: Any = None
        self.thread = threading.Thread(target=self._run, name="naiad-gang", daemon=True)
        self.thread.start()

    # -- what the server calls -----------------------------------------------------------
    def sync(self, offset: int, spool: bool = False) -> dict[str, Any]:
        """The state, the job log from ``offset``, and (``spool``) the unsent metric batches."""
        with self.lock:
            state = dict(self.state)
        try:
            with open(self.wd.job_log, "rb") as f:
                f.seek(offset)
                data = f.read(LOG_CHUNK)
        except FileNotFoundError:
            data = b""
        return {"state": state, "log": data, "spool": dict(self.spool) if spool else {}}

    def stop(self, grace_s: float) -> None:
        self.stop_grace = grace_s

    def release(self) -> None:
        """The server has all it needs: free this machine's files and end the actor."""
        import ray

        if self.thread.is_alive():
            return
        shutil.rmtree(self.root, ignore_errors=True)
        ray.actor.exit_actor()

    # -- the attempts --------------------------------------------------------------------
    def log(self, message: str) -> None:
        with open(self.wd.job_log, "a") as f:
            f.write(f"[naiad] {message}\n")

    def save(self, **changes: Any) -> None:
        with self.lock:
            self.state.update(changes, updated_at=time.time())

    def _run(self) -> None:
        attempt = 0
        try:
            while True:
                outcome = self._attempt(attempt)
                if outcome is None:
                    self.save(phase="succeeded", reason=None, exit_code=0)
                    self.log("job succeeded")
                    return
                phase, reason, code = outcome
                if phase != "failed" or attempt >= self.spec.max_retries:
                    self.save(phase=phase, reason=reason, exit_code=code)
                    self.log(f"job {phase}: {reason}")
                    return
                summary = reason.split(launch.TAIL_HEADER)[0].splitlines()[0].rstrip(".")
                self.log(
                    f"attempt {attempt} failed ({summary}); retrying the whole gang "
                    f"({attempt + 1} of {self.spec.max_retries} retries), resuming from "
                    "the checkpoints in the artifact store"
                )
                self.save(exit_code=code, reason=f"Retrying after: {summary}")
                attempt += 1
        except Exception as exc:
            traceback.print_exc()
            self.save(phase="failed", reason=f"The job's coordinator failed: {exc!r}")
            self.log(f"job failed: the coordinator failed: {exc!r}")
        finally:
            self._release_gang()
            with self.lock:
                self.state["finished_at"] = time.time()

    def _stopping(self) -> bool:
        return self.stop_grace is not None

    def _reserve(self, attempt: int) -> bool:
        """Reserve the gang (every node at once, or none); False when stopped meanwhile."""
        import ray
        from ray.util.placement_group import placement_group

        nodes = max(1, self.spec.nodes)
        strategy = "STRICT_SPREAD" if nodes > 1 else "PACK"
        self.group = placement_group(
            [bundle(self.spec)] * nodes,
            strategy=strategy,
            name=f"{coordinator_name(self.spec.run_id)}-{attempt}",
        )
        res = " and ".join(f"{v:g} {k}" for k, v in bundle(self.spec).items())
        needs = f"{nodes} node(s) with {res} free ({strategy})"
        self.save(phase="starting", attempt=attempt, placed=False, reason=f"Waiting for {needs}")
        said = False
        while not self._stopping():
            ready, _ = ray.wait([self.group.ready()], timeout=1.0)
            if ready:
                self.save(placed=True, reason=None)
                return True
            if not said:
                self.log(f"attempt {attempt} waits for {needs}")
                said = True
        return False

    def _release_gang(self) -> None:
        import ray
        from ray.util.placement_group import remove_placement_group

        with contextlib.suppress(Exception):  # each host's folder, all at once
            refs = [h.remove.remote() for h in self._alive_hosts()]
            ray.wait(refs, num_returns=len(refs), timeout=CALL_TIMEOUT_S)
        for host in self.hosts:
            with contextlib.suppress(Exception):
                ray.kill(host)
        self.hosts, self.lost = [], set()
        if self.group is not None:
            with contextlib.suppress(Exception):
                remove_placement_group(self.group)
            self.group = None

    def _start_hosts(self, attempt: int) -> tuple[list[str], list[str]]:
        """Start a host in each bundle; returns their names and their Ray nodes' ids."""
        import ray
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        remote = ray.remote(NodeHost)
        nodes = max(1, self.spec.nodes)
        cpus, gpus = bundle(self.spec)["CPU"], bundle(self.spec).get("GPU", 0.0)
        folder = f"{self.spec.job_name}-{self.spec.run_id[:12]}-a{attempt}"
        self.hosts = [
            remote.options(
                num_cpus=cpus,
                num_gpus=gpus,
                scheduling_strategy=PlacementGroupSchedulingStrategy(self.group, i),
            ).remote(f"{folder}-{i}")
            for i in range(nodes)
        ]
        procs = max(1, self.spec.processes_per_node)
        places = ray.get([h.place.remote(procs) for h in self.hosts], timeout=120)
        ips = [p["ip"] for p in places]
        names = ips if len(set(ips)) == nodes else [f"algo-{i + 1}" for i in range(nodes)]
        where = ", ".join(
            f"algo-{i + 1}={p['ip']} (node {p['node'][:8]})" for i, p in enumerate(places)
        )
        self.log(f"attempt {attempt}: the gang is placed on {where}")
        master, port = places[0]["ip"], int(places[0]["port"])
        workers = [w for place in places for w in place["workers"]]  # by rank
        for i, host in enumerate(self.hosts):
            gang = GangPlace(names, i, master, port, attempt, workers=workers)
            spec = replace(
                self.spec,
                gang=gang,
                # only rank 0's host reads metrics from its log: one series, not one per host
                metric_definitions=self.spec.metric_definitions if i == 0 else [],
            )
            ray.get(host.start.remote(spec_to_json(spec)), timeout=CALL_TIMEOUT_S)
        return names, [p["node"] for p in places]

    def _attempt(self, attempt: int) -> tuple[str, str, int | None] | None:
        """One attempt of the whole gang: None when it succeeded, else (phase, reason, code)."""
        import ray

        if self.spec.elastic:
            from naiad.executors.ray.elastic import ElasticGang

            try:
                return ElasticGang(self, attempt).run()
            finally:
                self._collect_spool()
                self._release_gang()
        if self._stopping() or not self._reserve(attempt):
            return "stopped", "Stopped on request", None
        try:
            names, nodes = self._start_hosts(attempt)
            return self._watch(attempt, names, nodes)
        except ray.exceptions.RayError as exc:
            return "failed", f"A host of the gang could not start: {exc}", None
        finally:
            self._collect_spool()
            self._release_gang()

    def _watch(
        self, attempt: int, names: list[str], nodes: list[str]
    ) -> tuple[str, str, int | None] | None:
        import ray

        offsets = [0] * len(self.hosts)
        done: dict[int, dict[str, Any]] = {}
        asked: dict[int, tuple[Any, float]] = {}  # each host's poll in flight, and since when
        ending = False
        while True:
            for i, host in enumerate(self.hosts):
                if i not in asked and not done.get(i, {}).get("lost"):
                    asked[i] = (host.poll.remote(offsets[i]), time.monotonic())
            # every host at once: one on a dying node must not hold up news of the others
            refs = [ref for ref, _ in asked.values()]
            answered, _ = ray.wait(refs, num_returns=len(refs), timeout=WATCH_S)
            for i, (ref, since) in list(asked.items()):
                if ref not in answered:
                    late = time.monotonic() - since > LOST_AFTER_S
                    if late or (ending and time.monotonic() - since > CALL_TIMEOUT_S):
                        done[i] = {"lost": True, "reason": _lost(names[i], "no answer")}
                        self.lost.add(i)
                        del asked[i]
                    continue
                del asked[i]
                try:
                    got = ray.get(ref)
                except ray.exceptions.ActorUnavailableError as exc:
                    # a blip, or its node is going: lost once Ray says the node is dead, or
                    # at once when the attempt is ending anyway (its peers failed with it)
                    if ending or not _node_alive(nodes[i]):
                        done[i] = {"lost": True, "reason": _lost(names[i], type(exc).__name__)}
                        self.lost.add(i)
                    continue
                except ray.exceptions.RayError as exc:
                    done[i] = {"lost": True, "reason": _lost(names[i], type(exc).__name__)}
                    self.lost.add(i)
                    continue
                self._append(i, got["log"])
                offsets[i] += len(got["log"])
                state = got["state"]
                if state.get("phase") == "running" and self.state.get("phase") != "running":
                    self.save(phase="running", attempt=attempt, reason=None)
                    if self.state.get("started_at") is None:
                        self.save(started_at=state.get("started_at") or time.time())
                if Phase(state.get("phase", "starting")).terminal and not got["log"]:
                    done.setdefault(i, state)
            failed = {i: s for i, s in done.items() if s.get("lost") or s["phase"] != "succeeded"}
            if len(done) == len(self.hosts) and not failed:
                return None
            if (failed or self._stopping()) and not ending:
                ending = True
                grace = self.stop_grace if self.stop_grace is not None else HOST_STOP_GRACE_S
                if failed and not self._stopping():
                    first = min(failed)
                    self.log(f"host {names[first]} ended the attempt; ending the other hosts")
                for i, h in enumerate(self.hosts):
                    if i not in done:
                        h.stop.remote(grace)
                deadline = time.monotonic() + grace + CALL_TIMEOUT_S
            if ending and (len(done) == len(self.hosts) or time.monotonic() > deadline):
                return self._outcome(failed, names)
            if not asked:
                time.sleep(WATCH_S)

    def _outcome(
        self, failed: dict[int, dict[str, Any]], names: list[str]
    ) -> tuple[str, str, int | None]:
        if self._stopping() and not any(s.get("lost") for s in failed.values()):
            return "stopped", "Stopped on request", None
        lost = [i for i, state in failed.items() if state.get("lost")]
        i = min(lost or failed)  # a lost node fails its peers too: it is the cause
        state = failed[i]
        if state.get("lost"):
            return "failed", state["reason"], None
        reason = state.get("reason") or "it failed"
        phase = "stopped" if state["phase"] == "stopped" else "failed"
        return phase, f"Host {names[i]}: {reason}", state.get("exit_code")

    def _append(self, index: int, data: bytes) -> None:
        if not data:
            return
        if index:
            prefix = f"[algo-{index + 1}] ".encode()
            data = b"".join(prefix + line for line in data.splitlines(True))
        with open(self.wd.job_log, "ab") as f:
            f.write(data)

    def _alive_hosts(self) -> list[Any]:
        return [h for i, h in enumerate(self.hosts) if i not in self.lost]

    def _collect_spool(self) -> None:
        import ray

        refs = [h.spool.remote(self.spec.run_id) for h in self._alive_hosts()]
        answered, _ = ray.wait(refs, num_returns=len(refs), timeout=CALL_TIMEOUT_S)
        for ref in answered:
            with contextlib.suppress(ray.exceptions.RayError):
                self.spool.update(ray.get(ref))


def _node_alive(node_id: str) -> bool:
    import ray

    return any(n["NodeID"] == node_id and n["Alive"] for n in ray.nodes())


def _lost(name: str, why: str) -> str:
    return (
        f"Host {name} was lost: its Ray node or worker died mid-attempt ({why}); its "
        "processes went with it."
    )
