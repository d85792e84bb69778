"""Client: one namespace per resource over the REST API."""

from __future__ import annotations

import builtins
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from naiad.schemas.artifacts import Artifact
from naiad.schemas.common import ParamValue
from naiad.schemas.experiments import Experiment
from naiad.schemas.maintenance import GcResult
from naiad.schemas.runs import Run, RunComparison
from naiad.sdk.audit import AuditLog
from naiad.sdk.config import resolve
from naiad.sdk.connections import Connections
from naiad.sdk.endpoints import Endpoints
from naiad.sdk.http import Transport, raise_for
from naiad.sdk.jobs import TrainingJobs
from naiad.sdk.keys import AccessKeys
from naiad.sdk.models import Evaluations, Models
from naiad.sdk.notebooks import Notebooks
from naiad.sdk.projects import Projects
from naiad.sdk.tuning import TuningJobs
from naiad.sdk.users import Users

if TYPE_CHECKING:
    from naiad.sdk.series import MetricSeries  # numpy: loaded when a series is read


class Experiments:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def create(
        self, name: str, description: str = "", tags: dict[str, str] | None = None
    ) -> Experiment:
        body = {"name": name, "description": description, "tags": tags or {}}
        return Experiment.model_validate(self._t.request("POST", "/experiments", json=body))

    def get(self, name: str) -> Experiment:
        return Experiment.model_validate(self._t.request("GET", f"/experiments/{name}"))

    def list(self) -> list[Experiment]:
        return [Experiment.model_validate(e) for e in self._t.request("GET", "/experiments")]

    def update(
        self, name: str, description: str | None = None, tags: dict[str, str] | None = None
    ) -> Experiment:
        body = {"description": description, "tags": tags}
        return Experiment.model_validate(
            self._t.request("PATCH", f"/experiments/{name}", json=body)
        )

    def delete(self, name: str) -> None:
        self._t.request("DELETE", f"/experiments/{name}")


class Runs:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def create(
        self,
        experiment: str = "Default",
        name: str | None = None,
        params: dict[str, ParamValue] | None = None,
        tags: dict[str, str] | None = None,
    ) -> Run:
        body = {"experiment": experiment, "name": name, "params": params or {}, "tags": tags or {}}
        return Run.model_validate(self._t.request("POST", "/runs", json=body))

    def get(self, run_id: str) -> Run:
        return Run.model_validate(self._t.request("GET", f"/runs/{run_id}"))

    def search(
        self,
        experiment: str | None = None,
        filter: str | None = None,
        order_by: str | list[str] | None = None,
        limit: int = 100,
        offset: int = 0,
        created_by: str | None = None,
    ) -> tuple[list[Run], int]:
        """One page of matching runs and the total that match (``created_by``: only runs
        that user created)."""
        orders = [order_by] if isinstance(order_by, str) else list(order_by or [])
        body = {
            "experiment": experiment,
            "filter": filter,
            "order_by": orders,
            "limit": limit,
            "offset": offset,
            "created_by": created_by,
        }
        page = self._t.request("POST", "/runs/search", json=body)
        return [Run.model_validate(r) for r in page["items"]], page["total"]

    def list(
        self,
        experiment: str | None = None,
        filter: str | None = None,
        order_by: str | list[str] | None = None,
        limit: int = 100,
        offset: int = 0,
        created_by: str | None = None,
    ) -> list[Run]:
        """Runs matching ``filter`` (e.g. ``"metrics.acc > 0.9"``), sorted by ``order_by``."""
        return self.search(experiment, filter, order_by, limit, offset, created_by)[0]

    def update(
        self,
        run_id: str,
        status: str | None = None,
        status_reason: str | None = None,
        name: str | None = None,
    ) -> Run:
        body = {
            k: v
            for k, v in (("status", status), ("status_reason", status_reason), ("name", name))
            if v is not None
        }
        return Run.model_validate(self._t.request("PATCH", f"/runs/{run_id}", json=body))

    def delete(self, run_id: str) -> None:
        """Delete a run with its metrics, artifacts and finished job (Conflict while the
        job is queued or running)."""
        self._t.request("DELETE", f"/runs/{run_id}")

    def log_params(self, run_id: str, params: dict[str, ParamValue]) -> Run:
        body = {"params": params}
        return Run.model_validate(self._t.request("POST", f"/runs/{run_id}/params", json=body))

    def set_tags(self, run_id: str, tags: dict[str, str]) -> Run:
        body = {"tags": tags}
        return Run.model_validate(self._t.request("POST", f"/runs/{run_id}/tags", json=body))

    def log_batch(self, run_id: str, batch: dict[str, Any], timeout: float | None = None) -> Any:
        """Send one columnar batch as built by the logging pipeline (see MetricBatch)."""
        return self._t.request("POST", f"/runs/{run_id}/metrics", json=batch, timeout=timeout)

    def metric_keys(self, run_id: str) -> builtins.list[str]:
        return self._t.request("GET", f"/runs/{run_id}/metrics")

    def metric_history(self, run_id: str, key: str, max_points: int | None = None) -> MetricSeries:
        """The whole series, or at most ``max_points`` buckets each keeping its min and max."""
        params = {"max_points": max_points} if max_points else None
        body = self._t.request("GET", f"/runs/{run_id}/metrics/{key}", params=params)
        from naiad.sdk.series import MetricSeries

        return MetricSeries.from_wire(body)

    def compare(self, run_ids: builtins.list[str]) -> RunComparison:
        body = self._t.request("GET", "/runs/compare", params={"run_id": run_ids})
        return RunComparison.model_validate(body)

    def upload_artifact(self, run_id: str, local_path: str | Path, artifact_path: str) -> Artifact:
        with open(local_path, "rb") as f:
            body = self._t.request(
                "PUT", f"/runs/{run_id}/artifacts/{artifact_path}", content=f, timeout=600
            )
        return Artifact.model_validate(body)

    def list_artifacts(
        self, run_id: str, path: str = "", recursive: bool = False
    ) -> builtins.list[Artifact]:
        params = {"path": path, "recursive": recursive}
        body = self._t.request("GET", f"/runs/{run_id}/artifacts", params=params)
        return [Artifact.model_validate(a) for a in body]

    def download_artifact(self, run_id: str, path: str, dest: str | Path) -> Path:
        """Download one file to ``dest``, or every file under a directory into ``dest``/."""
        dest = Path(dest)
        files = [a.path for a in self.list_artifacts(run_id, path, recursive=True) if not a.is_dir]
        if not files:  # a single file
            target = dest / Path(path).name if dest.is_dir() else dest
            self._download_file(run_id, path, target)
            return target
        base = Path(path)
        for rel in files:
            self._download_file(run_id, rel, dest / Path(rel).relative_to(base))
        return dest

    def _download_file(self, run_id: str, path: str, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        with self._t.stream("GET", f"/runs/{run_id}/artifacts/{path}") as response:
            if response.status_code >= 400:
                response.read()
                raise_for(response)
            tmp = target.with_name(f".{target.name}.part")
            with open(tmp, "wb") as f:
                for block in response.iter_bytes():
                    f.write(block)
            tmp.replace(target)

    def export(self, run_id: str, path: str | Path, format: str = "csv") -> Path:
        """Write every point of every metric (key, step, timestamp, value) as CSV or Parquet."""
        from naiad.sdk.export import write_points

        series = [self.metric_history(run_id, key) for key in self.metric_keys(run_id)]
        return write_points(series, Path(path), format)


class Client:
    """Talks to a Naiad server: ``Client()`` finds a local one, or pass ``url`` and ``token``.

    ``project`` (default: NAIAD_PROJECT, else the default project) is where what this client
    creates goes, and the one project its lists show; without one, lists show every project
    you hold a role in.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
        project: str | None = None,
    ):
        target = resolve(url, token)
        self.url = target.url
        self.project = project or os.environ.get("NAIAD_PROJECT") or None
        self._transport = Transport(target.url, target.token, timeout, self.project)
        self.experiments = Experiments(self._transport)
        self.runs = Runs(self._transport)
        self.training_jobs = TrainingJobs(self._transport)
        self.tuning_jobs = TuningJobs(self._transport, self.training_jobs)
        self.models = Models(self._transport, self.training_jobs)
        self.evaluations = Evaluations(self._transport)
        self.endpoints = Endpoints(self._transport)
        self.keys = AccessKeys(self._transport)
        self.connections = Connections(self._transport)
        self.audit = AuditLog(self._transport)
        self.users = Users(self._transport)
        self.projects = Projects(self._transport)
        self.notebooks = Notebooks(self._transport, self.training_jobs)

    def health(self) -> dict[str, Any]:
        return self._transport.request("GET", "/health")

    def gc(self, older_than_days: float | None = None, vacuum: bool = False) -> GcResult:
        """Free space on the server: finished jobs' work directories older than
        ``older_than_days`` (default: the server's retention), spooled batches it already
        has, files of deleted runs, the database's log; ``vacuum`` also compacts the
        database (slow on a big one)."""
        body = {"older_than_days": older_than_days, "vacuum": vacuum}
        return GcResult.model_validate(
            self._transport.request("POST", "/admin/gc", json=body, timeout=3600)
        )

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
