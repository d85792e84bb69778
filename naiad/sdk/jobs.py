"""client.training_jobs: submit a script with its source directory, then watch, follow, stop."""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

from naiad.core.errors import InvalidInput
from naiad.schemas.common import ParamValue
from naiad.schemas.jobs import JobLogs, SourceUploaded, TrainingJob
from naiad.sdk.http import Transport

TERMINAL = ("Completed", "Failed", "Stopped")
_SKIP_DIRS = {".git", "__pycache__", ".venv", ".ipynb_checkpoints", "node_modules"}


def pack_source(source_dir: str | Path) -> bytes:
    """The directory as .tar.gz, paths relative to it; caches and VCS folders left out."""
    root = Path(source_dir)
    if not root.is_dir():
        raise InvalidInput(f"Source directory {str(root)!r} does not exist or is not a directory.")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(root.rglob("*")):
            rel = path.relative_to(root)
            if any(part in _SKIP_DIRS for part in rel.parts) or not path.is_file():
                continue
            tar.add(path, arcname=rel.as_posix(), recursive=False)
    return buffer.getvalue()


def to_uri(location: str) -> str:
    """Local paths become file:// URIs (resolved here, where the user typed them)."""
    if "://" in location:
        return location
    return Path(location).expanduser().resolve().as_uri()


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
            if job.status in TERMINAL:
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

    def upload_source(self, source_dir: str | Path) -> SourceUploaded:
        body = self._t.request("PUT", "/sources", content=pack_source(source_dir), timeout=600)
        return SourceUploaded.model_validate(body)

    def create(
        self,
        name: str,
        entrypoint: str,
        source_dir: str | Path = ".",
        hyperparameters: dict[str, ParamValue] | None = None,
        inputs: dict[str, str] | None = None,
        experiment: str = "jobs",
        processes_per_node: int = 1,
        nodes: int = 1,
        gpus: int = 0,
        max_runtime_s: int | None = None,
        max_retries: int = 0,
        priority: int = 0,
    ) -> JobHandle:
        """Snapshot ``source_dir`` and queue ``entrypoint`` from it as a job."""
        source = self.upload_source(source_dir)
        body = {
            "name": name,
            "entrypoint": entrypoint,
            "source_uri": source.source_uri,
            "experiment": experiment,
            "hyperparameters": hyperparameters or {},
            "inputs": {k: to_uri(v) for k, v in (inputs or {}).items()},
            "processes_per_node": processes_per_node,
            "nodes": nodes,
            "gpus": gpus,
            "max_runtime_s": max_runtime_s,
            "max_retries": max_retries,
            "priority": priority,
        }
        job = TrainingJob.model_validate(self._t.request("POST", "/jobs", json=body))
        return JobHandle(self, job)

    def get(self, name: str) -> JobHandle:
        return JobHandle(self, TrainingJob.model_validate(self._t.request("GET", f"/jobs/{name}")))

    def list(self, status: str | None = None) -> list[TrainingJob]:
        params = {"status": status} if status else None
        return [
            TrainingJob.model_validate(j) for j in self._t.request("GET", "/jobs", params=params)
        ]

    def stop(self, name: str) -> JobHandle:
        job = TrainingJob.model_validate(self._t.request("POST", f"/jobs/{name}/stop"))
        return JobHandle(self, job)

    def read_logs(self, name: str, offset: int = 0, rank: int | None = None) -> JobLogs:
        params: dict[str, int] = {"offset": offset}
        if rank is not None:
            params["rank"] = rank
        return JobLogs.model_validate(self._t.request("GET", f"/jobs/{name}/logs", params=params))
