"""The contract between the server and whatever runs a job's processes.

The controller decides *when* a job runs; an executor only knows *how*: start the
job's supervisor, say how it is doing, stop it, and answer everything else about it
(its log, its spooled metrics, the files it left). Nothing above ``executors/`` opens
a job's files: callers hold the opaque ``JobHandle`` that ``submit`` returned, and the
job row stores it. Every method is idempotent so the controller can call it again
after a restart (the survival contract).
"""

from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from naiad.schemas.metrics import MetricBatch


class Phase(StrEnum):
    """Where a job's processes stand, as the executor sees them."""

    STARTING = "starting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"
    LOST = "lost"  # its supervisor vanished without recording an end

    @property
    def terminal(self) -> bool:
        """Nothing follows: the job's processes are gone and its outcome is known."""
        return self not in (Phase.STARTING, Phase.RUNNING)


@dataclass(frozen=True)
class JobHandle:
    """What an executor needs to find a job again; only that executor reads ``id``
    (the local executor: the job's directory, relative to its jobs folder)."""

    executor: str
    id: str

    def to_json(self) -> dict[str, str]:
        return {"executor": self.executor, "id": self.id}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "JobHandle":
        return cls(executor=str(data["executor"]), id=str(data["id"]))


@dataclass(frozen=True)
class GangPlace:
    """One host's place in a gang spread over machines (the Ray executor runs one
    supervisor per machine): every host's name, this one's rank, where rank 0 listens
    for torch.distributed's rendezvous, and the gang's attempt number."""

    hosts: list[str]
    rank: int
    master_addr: str
    master_port: int
    attempt: int = 0
    # an elastic job's: host:port of the rendezvous store its coordinator hosts
    rendezvous: str | None = None
    # host:port of every process of the gang in rank order, free when it was placed: the
    # addresses a TensorFlow job's MultiWorkerMirroredStrategy listens on (TF_CONFIG)
    workers: list[str] = field(default_factory=list)

    @property
    def host(self) -> str:
        return self.hosts[self.rank]


SANDBOX_TOOL = "bwrap"  # bubblewrap: what runs a sandboxed job's processes (LaunchSpec.sandbox)


@dataclass(frozen=True)
class LaunchSpec:
    """Everything a supervisor needs, written to ``work_dir/spec.json`` before it starts."""

    job_name: str
    run_id: str
    work_dir: Path  # the job's own directory; survives server restarts
    # the snapshot of the source directory (a .tar.gz in the artifact store); None: none
    # (a command job whose code comes in a channel), code/ is empty
    source_uri: str | None
    entrypoint: str | None  # script path inside the source, e.g. "train.py"; None: command
    # a program and its arguments run once per host instead of the entrypoint (/opt/ml in
    # it names the host's directory)
    command: list[str] | None = None
    # channels whose files name /opt/ml: each host gets a copy naming its own directory
    opt_ml_channels: list[str] = field(default_factory=list)
    hyperparameters: dict[str, object] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)  # channel -> URI
    output_uri: str = ""  # where model.tar.gz and output.tar.gz go
    nodes: int = 1  # hosts algo-1..algo-N (the local executor emulates them on its machine)
    # elastic: up to this many hosts, down to ``nodes`` (torchrun's --nnodes MIN:MAX)
    max_nodes: int | None = None
    rejoin_s: float = 30.0  # an elastic job's lost host is started again after this
    processes_per_node: int = 1
    framework: str = "auto"  # schemas.jobs.Framework; auto: decided from the entrypoint
    gpus: int = 0
    memory_mb: int | None = None  # per host: the processes' PSS summed; past it, OutOfMemory
    max_retries: int = 0
    max_runtime_s: int | None = None
    stop_grace_s: float = 10.0
    # [{"name", "regex"}]: log lines the supervisor turns into metrics of the job's run
    metric_definitions: list[dict[str, str]] = field(default_factory=list)
    # set in every process's environment, under Naiad's and SageMaker's own variables
    environment: dict[str, str] = field(default_factory=dict)
    # channel -> ChannelOptions as a dict (distribution, input_mode, content_type, ...)
    channels: dict[str, dict[str, Any]] = field(default_factory=dict)
    # where checkpoints/ is mirrored: a path in the artifact store or s3://; None: the default
    checkpoint_uri: str | None = None
    server_url: str = ""
    # The job's own token (core.job_tokens): its run and reads only, void once the job ends
    token: str | None = None
    artifact_root: str = ""  # the server's artifact store root URI
    s3_endpoint_url: str | None = None
    # None: this supervisor runs every host; else the one host it runs of a gang
    gang: GangPlace | None = None
    # The Naiad home to hide from the job's processes (NAIAD_JOB_SANDBOX); None: no sandbox
    sandbox: str | None = None

    def host_names(self) -> list[str]:
        """``["algo-1", ..., "algo-N"]`` as SageMaker names a job's instances, or the
        machines a gang runs on."""
        if self.gang is not None:
            return list(self.gang.hosts)
        return [f"algo-{i + 1}" for i in range(max(1, self.max_nodes or self.nodes))]

    @property
    def elastic(self) -> bool:
        return self.max_nodes is not None


@dataclass(frozen=True)
class ExecState:
    """What the executor can see of a job: its phase, and why when it ended."""

    phase: Phase
    reason: str | None = None
    attempt: int = 0
    started_at: float | None = None  # epoch seconds the user's code started
    exit_code: int | None = None
    # an elastic job's resizes so far: {"seq", "at", "from_workers", "to_workers", "step",
    # "reason"} (the server stores those it does not have)
    events: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class LogChunk:
    """Whole lines of a job's log from an offset; ``offset`` is where the next read starts."""

    text: str
    offset: int
    eof: bool  # nothing more is written yet (or ever, once the job has ended)


@dataclass(frozen=True)
class Held:
    """A job the executor still holds files for, found without the database."""

    handle: JobHandle
    changed_at: float  # epoch seconds of the last change: how old what it left is


class Capacity(Protocol):
    """What is free during one scheduler tick (``executors/capacity.py``)."""

    def take(self, nodes: int, processes_per_node: int, gpus: int) -> str | None:
        """None when the whole gang fits now (its room is then held for this tick), else
        why it waits, e.g. "needs 4 nodes with 1 CPU and 1 GPU free; 2 such free"."""
        ...


class Executor(Protocol):
    @property
    def slots(self) -> int:
        """How many processes (CPU cores, or GPUs when jobs use them) can run at once."""
        ...

    @property
    def nodes(self) -> int:
        """How many hosts a job may span (machines, or hosts emulated on one machine)."""
        ...

    def capacity(self, running: Sequence[LaunchSpec]) -> Capacity:
        """What is free to start jobs on now, ``running`` being the jobs not yet ended."""
        ...

    def grow(self, spec: LaunchSpec, capacity: Capacity) -> None:
        """Offer a running elastic job room for more hosts (after the queue had its turn):
        take what ``capacity`` has toward ``spec.max_nodes``. The Ray executor's job asks
        the cluster itself, so it takes nothing here."""
        ...

    def open(self) -> None:
        """Start what the executor keeps for itself while the server runs (a warm standby)."""
        ...

    def submit(self, spec: LaunchSpec) -> JobHandle:
        """Start the job's supervisor detached from the server; returns once it is launched."""
        ...

    def poll(self, spec: LaunchSpec) -> ExecState:
        """The job's state now, read from what the supervisor left (works after a restart)."""
        ...

    def stop(self, spec: LaunchSpec, grace_s: float) -> None:
        """SIGTERM the job's whole process group, then SIGKILL after ``grace_s``."""
        ...

    def read_log(
        self, handle: JobHandle, offset: int, limit: int, rank: int | None = None
    ) -> LogChunk:
        """At most ``limit`` bytes of whole lines of the job's log from ``offset``
        (``rank``: only that rank's lines); reading again from the returned offset follows it."""
        ...

    def collect_metrics(self, handle: JobHandle, run_id: str) -> Iterator[MetricBatch]:
        """The metric batches the job's processes could not send, left in place until
        ``drop_metrics``: a batch whose storing was rolled back is offered again."""
        ...

    def drop_metrics(self, handle: JobHandle, run_id: str, batch_ids: Collection[str]) -> None:
        """Forget spooled batches the caller has stored and committed."""
        ...

    def find(self, job_name: str) -> JobHandle | None:
        """The handle of a job this executor holds files for, by name: for a row stored
        without one (recorded before job rows kept handles)."""
        ...

    def held(self) -> dict[str, Held]:
        """Every job this executor holds files for, by job name (deleted jobs' too)."""
        ...

    def clear(self, handle: JobHandle, problems: list[str]) -> int | None:
        """Free what a finished job left but its log and final state; the bytes freed, or
        None while any of its processes still runs. What cannot go is noted in ``problems``."""
        ...

    def remove(self, handle: JobHandle, problems: list[str] | None = None) -> int | None:
        """Remove everything of a job (its run was deleted); None while it still runs.
        Without ``problems`` a failure raises ``OSError``."""
        ...

    def warm_ready(self) -> bool:
        """Whether the next job would start from a warm interpreter (torch imported)."""
        ...

    def close(self) -> None:
        """Release what the executor holds for itself (never the jobs, which outlive it)."""
        ...
