"""The contract between the server's controller and whatever runs a job's processes.

The controller decides *when* a job runs; an executor only knows *how*: start the
job's supervisor, say how it is doing, stop it. Every method is idempotent so the
controller can call it again after a restart (the survival contract).
"""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

Phase = Literal["starting", "running", "succeeded", "failed", "stopped", "lost"]


@dataclass(frozen=True)
class LaunchSpec:
    """Everything a supervisor needs, written to ``work_dir/spec.json`` before it starts."""

    job_name: str
    run_id: str
    work_dir: Path  # the job's own directory; survives server restarts
    source_uri: str  # the snapshot of the source directory (a .tar.gz in the artifact store)
    entrypoint: str  # script path inside the source, e.g. "train.py"
    hyperparameters: dict[str, object] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)  # channel -> URI
    output_uri: str = ""  # where model.tar.gz and output.tar.gz go
    nodes: int = 1
    processes_per_node: int = 1
    gpus: int = 0
    max_retries: int = 0
    max_runtime_s: int | None = None
    stop_grace_s: float = 10.0
    # [{"name", "regex"}]: log lines the supervisor turns into metrics of the job's run
    metric_definitions: list[dict[str, str]] = field(default_factory=list)
    server_url: str = ""
    token: str | None = None
    artifact_root: str = ""  # the server's artifact store root URI
    s3_endpoint_url: str | None = None


@dataclass(frozen=True)
class ExecState:
    """What the executor can see of a job: its phase, and why when it ended."""

    phase: Phase
    reason: str | None = None
    attempt: int = 0
    started_at: float | None = None  # epoch seconds the user's code started
    exit_code: int | None = None


class Executor(Protocol):
    @property
    def slots(self) -> int:
        """How many processes (CPU cores, or GPUs when jobs use them) can run at once."""
        ...

    def submit(self, spec: LaunchSpec) -> None:
        """Start the job's supervisor detached from the server; returns once it is launched."""
        ...

    def poll(self, spec: LaunchSpec) -> ExecState:
        """The job's state now, read from what the supervisor left (works after a restart)."""
        ...

    def stop(self, spec: LaunchSpec, grace_s: float) -> None:
        """SIGTERM the job's whole process group, then SIGKILL after ``grace_s``."""
        ...

    def warm_ready(self) -> bool:
        """Whether the next job would start from a warm interpreter (torch imported)."""
        ...

    def close(self) -> None:
        """Release what the executor holds for itself (never the jobs, which outlive it)."""
        ...
