"""Jobs as gangs on a Ray cluster; the server only schedules and records.

Each job gets a detached ``Coordinator`` actor named after its run (``gang.py``), which
reserves the gang and runs it. The server keeps a copy of what it needs in the job's
directory, as the local executor leaves it there (``spec.json``, ``state.json``,
``logs/job.log``, the unsent metric batches), so logs, metrics, clean-up and restarts
go through the same code (``local_files``). ``poll`` brings the copy up to date with
one call to the coordinator; after the job ends, and the copy is whole, the
coordinator is told to go. A restarted server finds a running job's coordinator by
its name, and reads on from where its copy of the log ends.
"""

import contextlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from naiad.core.errors import InvalidInput
from naiad.executors import local_files
from naiad.executors.base import Capacity, ExecState, JobHandle, LaunchSpec, Phase
from naiad.executors.capacity import NodePool, node_pool
from naiad.executors.local_files import exec_state
from naiad.executors.ray.gang import LOG_CHUNK, NAMESPACE, Coordinator, coordinator_name
from naiad.executors.ray.reach import check_reachable
from naiad.executors.supervisor.workdir import (
    WorkDir,
    ended,
    read_json,
    spec_to_json,
    write_json_atomic,
    write_spec,
)

log = logging.getLogger("naiad.executors.ray")
CALL_TIMEOUT_S = 5.0
SPOOL_DONE = "spool.fetched"


class RayExecutor(local_files.JobFolders):
    """Runs each job's gang on the Ray cluster at ``address`` (``auto``, ``ray://...``,
    or the ``host:port`` that ``ray start --head`` printed)."""

    name = "ray"

    def __init__(self, root: Path, address: str) -> None:
        self._root = Path(os.path.realpath(root))
        self._address = address
        self._ray: Any = None
        self._unplaced: dict[str, LaunchSpec] = {}  # submitted; their gang not yet reserved
        self._actors: dict[str, Any] = {}  # coordinators by run id

    # -- the cluster ----------------------------------------------------------------------
    def open(self) -> None:
        """Join the cluster, or say at once why not (Ray itself retries for minutes)."""
        import ray

        if not ray.is_initialized():
            check_reachable(self._address)
            try:
                ray.init(
                    address=self._address,
                    namespace=NAMESPACE,
                    logging_level=logging.WARNING,
                    log_to_driver=False,
                )
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise InvalidInput(
                    f"Could not join the Ray cluster at NAIAD_RAY_ADDRESS={self._address!r}: "
                    f"{exc}. Start one with `ray start --head`, or set NAIAD_RAY_ADDRESS to "
                    "the address it printed."
                ) from exc
        self._ray = ray

    def close(self) -> None:
        """Disconnect; the jobs' coordinators are detached and go on without us."""
        if self._ray is not None and self._ray.is_initialized():
            self._ray.shutdown()
        self._ray = None

    def _nodes(self) -> list[dict[str, float]]:
        """Each live node's total CPUs and GPUs."""
        found = []
        for node in self._ray.nodes():
            if node.get("Alive") and node.get("Resources", {}).get("CPU", 0) > 0:
                res = node["Resources"]
                found.append({"CPU": res.get("CPU", 0.0), "GPU": res.get("GPU", 0.0)})
        return found

    @property
    def slots(self) -> int:
        return int(sum(n["CPU"] for n in self._nodes())) if self._ray else 0

    @property
    def nodes(self) -> int:
        return len(self._nodes()) if self._ray else 0

    def capacity(self, running: Sequence[LaunchSpec]) -> NodePool:
        """What the cluster has free now, less the gangs submitted but not yet reserved
        (Ray counts a placement group only once it is placed)."""
        from ray._private.state import available_resources_per_node

        free = [
            {"CPU": res.get("CPU", 0.0), "GPU": res.get("GPU", 0.0)}
            for res in available_resources_per_node().values()
        ]
        pool = node_pool(free)
        for spec in self._unplaced.values():
            pool.take(spec.nodes, spec.processes_per_node, spec.gpus)
        return pool

    def grow(self, spec: LaunchSpec, capacity: Capacity) -> None:
        """Nothing to hand out: an elastic job's coordinator keeps a placement group
        waiting for each host it lacks, and Ray places it when a node has room."""

    def warm_ready(self) -> bool:
        return False

    # -- a job's coordinator --------------------------------------------------------------
    def _coordinator(self, spec: LaunchSpec) -> Any | None:
        """The job's coordinator, by its name (looked up once per server, then kept)."""
        actor = self._actors.get(spec.run_id)
        if actor is None:
            try:
                actor = self._ray.get_actor(coordinator_name(spec.run_id), namespace=NAMESPACE)
            except ValueError:
                return None
            self._actors[spec.run_id] = actor
        return actor

    def submit(self, spec: LaunchSpec) -> JobHandle:
        """Create the job's coordinator unless it exists or the job already ended."""
        wd = WorkDir(Path(spec.work_dir))
        if ended(read_json(wd.state_file)) or self._coordinator(spec) is not None:
            return self._handle(spec)
        wd.root.mkdir(parents=True, exist_ok=True)
        wd.logs.mkdir(parents=True, exist_ok=True)
        write_spec(spec)
        options: dict[str, Any] = {
            "name": coordinator_name(spec.run_id),
            "namespace": NAMESPACE,
            "lifetime": "detached",
            "num_cpus": 0,
            "max_concurrency": 4,  # sync and stop while its thread runs the attempts
            "resources": {"node:__internal_head__": 0.001},  # never on a node that may go
        }
        coordinator = self._ray.remote(Coordinator).options(**options)
        self._actors[spec.run_id] = coordinator.remote(spec_to_json(spec))
        self._unplaced[spec.job_name] = spec
        write_json_atomic(wd.state_file, {"phase": "starting", "attempt": 0})
        return self._handle(spec)

    def poll(self, spec: LaunchSpec) -> ExecState:
        """Bring the job's copy up to date from its coordinator; then say what it says."""
        wd = WorkDir(Path(spec.work_dir))
        state = read_json(wd.state_file) or {}
        if ended(state):
            self._unplaced.pop(spec.job_name, None)
            return exec_state(state)
        actor = self._coordinator(spec)
        if actor is None:
            if not wd.spec_file.exists():
                return ExecState(Phase.LOST, reason="The job was never submitted to this cluster.")
            self._unplaced.pop(spec.job_name, None)
            lost = {
                **state,
                "phase": Phase.LOST.value,
                "reason": "The job's coordinator is gone from the Ray cluster (the cluster "
                "restarted, or its head node was lost); its hosts went with it.",
            }
            write_json_atomic(wd.state_file, lost)
            return exec_state(lost)
        offset = wd.job_log.stat().st_size if wd.job_log.exists() else 0
        try:
            got = self._ray.get(actor.sync.remote(offset, True), timeout=CALL_TIMEOUT_S)
        except self._ray.exceptions.GetTimeoutError:
            return exec_state(state) if state else ExecState(Phase.STARTING)
        except self._ray.exceptions.RayError as exc:
            log.warning("could not reach the coordinator of %s: %s", spec.job_name, exc)
            self._actors.pop(spec.run_id, None)  # looked up again: gone, or back
            return exec_state(state) if state else ExecState(Phase.STARTING)
        if got["log"]:
            wd.logs.mkdir(parents=True, exist_ok=True)
            with open(wd.job_log, "ab") as f:
                f.write(got["log"])
        new = got["state"]
        if new.get("placed"):
            self._unplaced.pop(spec.job_name, None)
        terminal = exec_state(new).phase.terminal
        if terminal:
            if len(got["log"]) >= LOG_CHUNK or not new.get("finished_at"):
                new = {**new, "phase": Phase.RUNNING.value}  # the rest of the log comes first
            else:  # the copy is whole: record the end, then let the coordinator go
                self._keep_spool(wd, spec.run_id, got["spool"])
                write_json_atomic(wd.state_file, new)
                self._unplaced.pop(spec.job_name, None)
                with contextlib.suppress(Exception):
                    actor.release.remote()
                self._actors.pop(spec.run_id, None)
                return exec_state(new)
        if new != state:
            write_json_atomic(wd.state_file, new)
        return exec_state(new)

    def _keep_spool(self, wd: WorkDir, run_id: str, spool: dict[str, bytes]) -> None:
        from naiad.core.home import HomeLayout

        folder = HomeLayout(wd.naiad_home).spool / run_id
        if (wd.root / SPOOL_DONE).exists():
            return
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in spool.items():
            (folder / name).write_bytes(data)
        (wd.root / SPOOL_DONE).touch()

    def stop(self, spec: LaunchSpec, grace_s: float) -> None:
        wd = WorkDir(Path(spec.work_dir))
        if ended(read_json(wd.state_file)):
            return
        actor = self._coordinator(spec)
        if actor is not None:
            actor.stop.remote(grace_s)

    # -- files: the job's copy here --------------------------------------------------------
