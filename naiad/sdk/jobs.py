"""client.training_jobs: submit a script with its source directory, then watch, follow, stop."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from naiad.core.errors import InvalidInput
from naiad.core.status import Status
from naiad.schemas.common import ParamValue
from naiad.schemas.jobs import JobCreate, JobLogs, SourceUploaded, TrainingJob, node_range
from naiad.sdk import sources
from naiad.sdk.http import Transport
from naiad.sdk.sources import Progress, SourcePlan

MetricDefinitions = Mapping[str, str] | Sequence[Mapping[str, str]]
M = TypeVar("M", bound=BaseModel)


class LargeSourceWarning(UserWarning):
    """The source directory is big enough that it probably holds data or outputs."""


def _metric_definitions(definitions: MetricDefinitions | None) -> list[dict[str, str]]:
    """``{"loss": "loss: ([0-9.]+)"}``, or a list of ``{"name", "regex"}`` (or SageMaker's
    ``{"Name", "Regex"}``) mappings."""
    if definitions is None:
        return []
    if isinstance(definitions, Mapping):
        return [{"name": k, "regex": v} for k, v in definitions.items()]
    return [dict(d) for d in definitions]


def typed_value(value: str) -> ParamValue:
    """A value typed on a command line: whole numbers and reals become numbers, true/false
    booleans; anything else (and nan, inf, integers past 64 bits) stays the string typed."""
    try:
        number = int(value)
        return number if -(2**63) <= number < 2**63 else value
    except ValueError:
        pass
    try:
        real = float(value)
        return real if math.isfinite(real) else value
    except ValueError:
        pass
    return {"true": True, "false": False}.get(value.lower(), value)


def checked(schema: type[M], body: Mapping[str, object], what: str = "job") -> M:
    """The request validated here, with the server's own schema, before anything is sent."""
    try:
        return schema.model_validate(body)
    except ValidationError as exc:
        problems = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err["loc"])  # none: the request as a whole
            message = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"{where}: {message}" if where else message)
        raise InvalidInput(f"The {what} is not valid: " + "; ".join(problems) + ".") from None


def _checked(body: dict[str, object]) -> JobCreate:
    return checked(JobCreate, body)


def to_uri(location: str) -> str:
    """Local paths become file:// URIs (resolved here, where the user typed them)."""
    if "://" in location:
        return location
    return Path(location).expanduser().resolve().as_uri()


def template_fields(
    *,
    entrypoint: str | None = None,
    experiment: str | None = None,
    hyperparameters: Mapping[str, ParamValue] | None = None,
    inputs: Mapping[str, str] | None = None,
    processes_per_node: int | None = None,
    nodes: int | str | None = None,
    framework: str | None = None,
    gpus: int | None = None,
    memory_mb: int | None = None,
    max_runtime_s: int | None = None,
    max_retries: int | None = None,
    priority: int | None = None,
    metric_definitions: MetricDefinitions | None = None,
    environment: Mapping[str, str] | None = None,
    channels: Mapping[str, Mapping[str, Any]] | None = None,
    checkpoint_uri: str | None = None,
) -> dict[str, object]:
    """A job template's fields as the SDK takes them, in the schema's shape: local input
    paths as file:// URIs, metric definitions as a list, ``nodes="MIN:MAX"`` as nodes and
    max_nodes. What is None is left out, so the schema's default applies (a training
    job's and a tuning job's trials share this)."""
    nodes, max_nodes = (None, None) if nodes is None else node_range(nodes)
    fields: dict[str, object] = {
        "entrypoint": entrypoint,
        "experiment": experiment,
        "hyperparameters": None if hyperparameters is None else dict(hyperparameters),
        "inputs": None if inputs is None else {k: to_uri(v) for k, v in inputs.items()},
        "processes_per_node": processes_per_node,
        "nodes": nodes,
        "max_nodes": max_nodes,
        "framework": framework,
        "gpus": gpus,
        "memory_mb": memory_mb,
        "max_runtime_s": max_runtime_s,
        "max_retries": max_retries,
        "priority": priority,
        "metric_definitions": (
            None if metric_definitions is None else _metric_definitions(metric_definitions)
        ),
        "environment": None if environment is None else dict(environment),
        "channels": None if channels is None else {k: dict(v) for k, v in channels.items()},
        "checkpoint_uri": checkpoint_uri,
    }
    return {key: value for key, value in fields.items() if value is not None}


class JobHandle:
    """A submitted job: ``wait()``, ``logs()``, ``stop()``, ``status``."""

    def __init__(self, jobs: TrainingJobs, job: TrainingJob) -> None:
        self._jobs = jobs
        self.job = job
        self.name = job.name

    def refresh(self) -> TrainingJob:
        self.job = self._jobs.get(self.name).job
        return self.job

    @property
    def status(self) -> str:
        return self.refresh().status

    def stop(self) -> TrainingJob:
        self.job = self._jobs.stop(self.name).job
        return self.job

    def wait(
        self, timeout: float | None = None, poll: float = 0.5, progress: bool = False
    ) -> TrainingJob:
        """Block until the job ends; ``progress`` prints status changes as they happen."""
        deadline = None if timeout is None else time.monotonic() + timeout
        seen = None
        while True:
            job = self.refresh()
            if progress and job.status != seen:
                print(
                    f"{job.name}: {job.status}"
                    + (f" - {job.status_reason}" if job.status_reason else "")
                )
                seen = job.status
            if Status(job.status).terminal:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"Job {self.name} is still {job.status} after {timeout}s.")
            time.sleep(poll)

    def logs(
        self, follow: bool = False, rank: int | None = None, poll: float = 0.5
    ) -> Iterator[str]:
        """The job's log text, chunk by chunk; with ``follow`` until the job ends."""
        offset = 0
        while True:
            chunk = self._jobs.read_logs(self.name, offset, rank)
            offset = chunk.offset
            if chunk.text:
                yield chunk.text
            if chunk.complete or not follow:
                return
            if not chunk.text:
                time.sleep(poll)


class TrainingJobs:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def upload_source(
        self, source_dir: str | Path | SourcePlan, progress: Progress | None = None
    ) -> SourceUploaded:
        """Snapshot and upload a directory; ``progress(phase, done, total)`` hears how far
        packing ("pack") and sending ("upload") have got, in bytes.

        A plan from :func:`naiad.sdk.sources.plan_source` is used as it is; a path is
        planned here, with a :class:`LargeSourceWarning` when it is large.
        """
        plan = source_dir
        if not isinstance(plan, SourcePlan):
            plan = sources.plan_source(plan)
            if (message := plan.warning()) is not None:
                warnings.warn(message, LargeSourceWarning, stacklevel=3)
        with sources.pack(plan, progress) as archive:
            _, content = sources.chunks(archive, progress)
            body = self._t.request("PUT", "/sources", content=content, timeout=600)
        return SourceUploaded.model_validate(body)

    def create(
        self,
        name: str,
        entrypoint: str,
        source_dir: str | Path | SourcePlan = ".",
        hyperparameters: dict[str, ParamValue] | None = None,
        inputs: dict[str, str] | None = None,
        experiment: str = "jobs",
        processes_per_node: int = 1,
        nodes: int | str = 1,
        gpus: int = 0,
        max_runtime_s: int | None = None,
        max_retries: int = 0,
        priority: int = 0,
        metric_definitions: MetricDefinitions | None = None,
        progress: Progress | None = None,
        framework: str = "auto",
        memory_mb: int | None = None,
        environment: Mapping[str, str] | None = None,
        channels: Mapping[str, Mapping[str, Any]] | None = None,
        checkpoint_uri: str | None = None,
    ) -> JobHandle:
        """Snapshot ``source_dir`` and queue ``entrypoint`` from it as a job.

        ``metric_definitions`` (``{"loss": "loss: ([0-9.]+)"}``) turn matching lines of
        the job's log into metrics of its run, as SageMaker's ``MetricDefinitions`` do.
        ``environment`` is set in every process of the job; ``channels`` gives an input
        channel's options (``{"train": {"distribution": "ShardedByS3Key"}}``);
        ``checkpoint_uri`` is where ``checkpoints/`` is kept and restored from;
        ``memory_mb`` limits the memory of the job's processes on each node (past it the job
        fails with OutOfMemory); ``nodes="1:4"`` makes the job elastic (docs/jobs.md);
        ``framework`` is ``auto``, ``pytorch`` or ``tensorflow`` (docs/frameworks.md). The
        request is checked before the source is packed, so a mistake costs no upload.
        """
        fields = template_fields(
            entrypoint=entrypoint,
            experiment=experiment,
            hyperparameters=hyperparameters,
            inputs=inputs,
            processes_per_node=processes_per_node,
            nodes=nodes,
            framework=framework,
            gpus=gpus,
            memory_mb=memory_mb,
            max_runtime_s=max_runtime_s,
            max_retries=max_retries,
            priority=priority,
            metric_definitions=metric_definitions,
            environment=environment,
            channels=channels,
            checkpoint_uri=checkpoint_uri,
        )
        body = _checked({"name": name, "source_uri": "pending", **fields})
        body.source_uri = self.upload_source(source_dir, progress).source_uri
        job = self._t.request("POST", "/jobs", json=body.model_dump(mode="json"))
        return JobHandle(self, TrainingJob.model_validate(job))

    def get(self, name: str) -> JobHandle:
        return JobHandle(self, TrainingJob.model_validate(self._t.request("GET", f"/jobs/{name}")))

    def list(self, status: str | None = None, created_by: str | None = None) -> list[TrainingJob]:
        params = {k: v for k, v in {"status": status, "created_by": created_by}.items() if v}
        return [
            TrainingJob.model_validate(j) for j in self._t.request("GET", "/jobs", params=params)
        ]

    def rerun(self, name: str, new_name: str | None = None) -> JobHandle:
        """A new job with ``name``'s request (a retry, or the same training again), named
        ``new_name`` or ``NAME-rN``."""
        body = {"name": new_name} if new_name else None
        job = TrainingJob.model_validate(self._t.request("POST", f"/jobs/{name}/rerun", json=body))
        return JobHandle(self, job)

    def stop(self, name: str) -> JobHandle:
        job = TrainingJob.model_validate(self._t.request("POST", f"/jobs/{name}/stop"))
        return JobHandle(self, job)

    def read_logs(self, name: str, offset: int = 0, rank: int | None = None) -> JobLogs:
        params: dict[str, int] = {"offset": offset}
        if rank is not None:
            params["rank"] = rank
        return JobLogs.model_validate(self._t.request("GET", f"/jobs/{name}/logs", params=params))
