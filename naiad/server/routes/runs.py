"""/api/v1/runs: create, read, search, update, delete, params, tags, comparison."""

from typing import Annotated

from fastapi import APIRouter, Query, status

from naiad.schemas.common import Page
from naiad.schemas.runs import (
    MAX_OFFSET,
    ParamsLog,
    Run,
    RunComparison,
    RunCreate,
    RunSearch,
    RunUpdate,
    TagsSet,
)
from naiad.server.deps import SessionDep, StateDep, VisibleDep
from naiad.services import maintenance
from naiad.services.compare import compare
from naiad.store import runs

router = APIRouter(prefix="/runs", tags=["runs"])


@router.post("", status_code=status.HTTP_201_CREATED)
def create_run(body: RunCreate, session: SessionDep, state: StateDep) -> Run:
    return runs.create(session, body, state.artifacts.uri)


@router.post("/search")
def search_runs(body: RunSearch, session: SessionDep, visible: VisibleDep) -> Page[Run]:
    items, total = runs.search(session, body, visible)
    return Page[Run](items=items, total=total, offset=body.offset, limit=body.limit)


@router.get("")
def list_runs(
    session: SessionDep,
    visible: VisibleDep,
    experiment: str | None = None,
    filter: str | None = None,
    order_by: Annotated[list[str] | None, Query()] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    created_by: Annotated[str | None, Query(max_length=200)] = None,
) -> Page[Run]:
    """The same search as POST /runs/search, from query parameters."""
    body = RunSearch(
        experiment=experiment,
        filter=filter,
        order_by=order_by or [],
        offset=offset,
        limit=limit,
        created_by=created_by,
    )
    return search_runs(body, session, visible)


@router.get("/compare")
def compare_runs(
    session: SessionDep, run_ids: Annotated[list[str], Query(alias="run_id")]
) -> RunComparison:
    return compare(session, run_ids)


@router.get("/{run_id}")
def get_run(run_id: str, session: SessionDep) -> Run:
    return runs.get(session, run_id)


@router.patch("/{run_id}")
def update_run(run_id: str, body: RunUpdate, session: SessionDep) -> Run:
    return runs.update(session, run_id, body)


@router.delete("/{run_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_run(run_id: str, state: StateDep) -> None:
    """The run with its params, tags, metrics, artifacts and finished job; 409 while its
    job is queued or running."""
    maintenance.delete_run(state.sessions, state.artifacts, state.executor, run_id)


@router.post("/{run_id}/params")
def log_params(run_id: str, body: ParamsLog, session: SessionDep) -> Run:
    runs.log_params(session, run_id, body.params)
    return runs.get(session, run_id)


@router.post("/{run_id}/tags")
def set_tags(run_id: str, body: TagsSet, session: SessionDep) -> Run:
    runs.set_tags(session, run_id, body.tags)
    return runs.get(session, run_id)
