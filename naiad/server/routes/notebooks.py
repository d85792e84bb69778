"""/api/v1/notebooks: managed JupyterLab servers (create, list, show, stop, start, delete).

A route only writes the notebook's row; the notebook keeper (``controller.notebooks``)
starts, stops and removes the process. Each one opens at ``/notebooks/NAME/lab``.
"""

from fastapi import APIRouter, status

from naiad.core.errors import Conflict
from naiad.schemas.jobs import TrainingJob
from naiad.schemas.notebooks import RUNNING, Notebook, NotebookCreate, NotebookJobCreate
from naiad.server.deps import SessionDep, StateDep
from naiad.server.managed.notebooks import available
from naiad.services import notebooks as notebook_service
from naiad.services.jobs import check_source
from naiad.store import jobs, notebooks

router = APIRouter(prefix="/notebooks", tags=["notebooks"])


@router.post("", status_code=status.HTTP_201_CREATED)
def create_notebook(body: NotebookCreate, session: SessionDep, state: StateDep) -> Notebook:
    """Queue a notebook server (Pending); it is InService once JupyterLab answers."""
    missing = available()
    if missing is not None:
        raise Conflict(missing)
    if body.source_uri is not None:
        check_source(state.artifacts, body.source_uri)
    return notebooks.shown(notebooks.create(session, body))


@router.get("")
def list_notebooks(session: SessionDep, status: str | None = None) -> list[Notebook]:
    return [notebooks.shown(row) for row in notebooks.listed(session, status)]


@router.get("/{name}")
def get_notebook(name: str, session: SessionDep) -> Notebook:
    return notebooks.shown(notebooks.get(session, name))


@router.post("/{name}/stop")
def stop_notebook(name: str, session: SessionDep) -> Notebook:
    """Stop its JupyterLab (kernels end); its files stay. Stopping a stopped one is a no-op."""
    row = notebooks.get(session, name)
    if row.status in RUNNING:
        notebooks.set_status(row, "Stopping", "Stopped on request")
    elif row.status == "Deleting":
        raise Conflict(f"Notebook {name!r} is being deleted.")
    return notebooks.shown(row)


@router.post("/{name}/start")
def start_notebook(name: str, session: SessionDep) -> Notebook:
    """Start a Stopped or Failed notebook again, on the files it had."""
    row = notebooks.get(session, name)
    if row.status in ("Stopping", "Deleting"):
        raise Conflict(
            f"Notebook {name!r} is {row.status}; wait until it is Stopped, then start it."
        )
    if row.status in ("Stopped", "Failed"):
        missing = available()
        if missing is not None:
            raise Conflict(missing)
        notebooks.set_status(row, "Pending", "Starting JupyterLab")
    return notebooks.shown(row)


@router.delete("/{name}", status_code=status.HTTP_202_ACCEPTED)
def delete_notebook(name: str, session: SessionDep) -> Notebook:
    """Stop it and delete it with its files (Deleting until the keeper has removed it)."""
    row = notebooks.get(session, name)
    notebooks.set_status(row, "Deleting", "Deleted on request; its files go with it")
    return notebooks.shown(row)


@router.get("/{name}/files")
def notebook_files(name: str, session: SessionDep, state: StateDep) -> list[str]:
    """The notebook's .ipynb files (paths under its folder, hidden ones left out): what
    ``/jobs`` can run. An editor reads this without reaching the notebook server itself."""
    return notebook_service.notebook_files(session, state.settings.layout.notebooks, name)


@router.post("/{name}/jobs", status_code=status.HTTP_201_CREATED)
def run_as_job(
    name: str, body: NotebookJobCreate, session: SessionDep, state: StateDep
) -> TrainingJob:
    """Run one of the notebook's .ipynb files as a training job, on a snapshot of its files."""
    row = notebook_service.run_as_job(
        session,
        state.artifacts,
        state.settings.layout.notebooks,
        name,
        body,
        state.slots,
        state.executor.nodes,
    )
    return jobs.to_schema(session, row)
