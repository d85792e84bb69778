"""client.notebooks: managed JupyterLab servers, opened through the server's own URL.

nb = client.notebooks.create("explore", source_dir="analysis/", wait=True)
print(client.url + nb.url)          # /notebooks/explore/lab, behind the console's login
client.notebooks.stop("explore")    # its files stay; start() goes on from them
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import quote

from naiad.core.errors import NotFound
from naiad.schemas.common import ParamValue
from naiad.schemas.jobs import TrainingJob
from naiad.schemas.notebooks import Notebook
from naiad.sdk.http import Transport
from naiad.sdk.jobs import JobHandle, TrainingJobs
from naiad.sdk.sources import Progress, SourcePlan

SETTLED = ("InService", "Stopped", "Failed")


class Notebooks:
    def __init__(self, transport: Transport, jobs: TrainingJobs) -> None:
        self._t = transport
        self._jobs = jobs

    def create(
        self,
        name: str,
        source_dir: str | Path | SourcePlan | None = None,
        requirements: str | Path | None = None,
        idle_timeout_s: int | None = 3600,
        description: str = "",
        wait: bool = False,
        timeout: float = 300.0,
        progress: Progress | None = None,
    ) -> Notebook:
        """Start a notebook server; ``source_dir``'s files become its working directory,
        and ``requirements`` (a requirements.txt file, or its text; else one in
        ``source_dir``) gives its kernels those packages. ``wait``: until it is InService
        (or Failed)."""
        body: dict[str, object] = {
            "name": name,
            "idle_timeout_s": idle_timeout_s,
            "description": description,
        }
        if requirements is not None:
            given = Path(requirements) if isinstance(requirements, Path) else None
            body["requirements"] = given.read_text() if given else str(requirements)
        if source_dir is not None:
            body["source_uri"] = self._jobs.upload_source(source_dir, progress).source_uri
        notebook = Notebook.model_validate(self._t.request("POST", "/notebooks", json=body))
        return self.wait(name, timeout) if wait else notebook

    def list(self, status: str | None = None) -> list[Notebook]:
        params = {"status": status} if status else None
        return [
            Notebook.model_validate(n) for n in self._t.request("GET", "/notebooks", params=params)
        ]

    def get(self, name: str) -> Notebook:
        return Notebook.model_validate(self._t.request("GET", f"/notebooks/{quote(name)}"))

    def stop(self, name: str, wait: bool = False, timeout: float = 120.0) -> Notebook:
        """Stop its JupyterLab (its kernels end); its files stay."""
        notebook = Notebook.model_validate(
            self._t.request("POST", f"/notebooks/{quote(name)}/stop")
        )
        return self.wait(name, timeout) if wait else notebook

    def start(self, name: str, wait: bool = False, timeout: float = 300.0) -> Notebook:
        """Start a Stopped (or Failed) notebook again, on its files."""
        notebook = Notebook.model_validate(
            self._t.request("POST", f"/notebooks/{quote(name)}/start")
        )
        return self.wait(name, timeout) if wait else notebook

    def delete(self, name: str, wait: bool = False, timeout: float = 120.0) -> None:
        """Stop it and delete it with its files; ``wait``: until it is gone."""
        self._t.request("DELETE", f"/notebooks/{quote(name)}")
        deadline = time.monotonic() + timeout
        while wait:
            try:
                self.get(name)
            except NotFound:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"Notebook {name} is still being deleted after {timeout}s.")
            time.sleep(0.5)

    def run_as_job(
        self,
        name: str,
        path: str,
        hyperparameters: dict[str, ParamValue] | None = None,
        job_name: str | None = None,
        experiment: str | None = None,
    ) -> JobHandle:
        """Run the notebook file ``path`` (in its working directory) as a training job, on
        a snapshot of its files; the hyperparameters go after its cell tagged 'parameters'."""
        body = {
            "path": path,
            "hyperparameters": dict(hyperparameters or {}),
            "job_name": job_name,
            "experiment": experiment,
        }
        answer = self._t.request("POST", f"/notebooks/{quote(name)}/jobs", json=body)
        return JobHandle(self._jobs, TrainingJob.model_validate(answer))

    def wait(self, name: str, timeout: float = 300.0) -> Notebook:
        """Until the notebook is InService, Stopped or Failed; returns it then."""
        deadline = time.monotonic() + timeout
        while True:
            notebook = self.get(name)
            if notebook.status in SETTLED:
                return notebook
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"Notebook {name} is still {notebook.status} after {timeout}s "
                    f"({notebook.status_reason or 'no reason given'})."
                )
            time.sleep(0.5)
