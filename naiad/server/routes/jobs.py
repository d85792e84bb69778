"""/api/v1/sources and /api/v1/jobs: upload a source snapshot, submit, watch, stop, read logs."""

from typing import Annotated

from fastapi import APIRouter, Body, Query, Request, status

from naiad.core.status import Status
from naiad.schemas.jobs import JobCreate, JobLogs, JobRerun, SourceUploaded, TrainingJob
from naiad.server.deps import SessionDep, StateDep, VisibleDep
from naiad.server.uploads import store_archive
from naiad.services import jobs as job_service
from naiad.store import jobs

router = APIRouter(tags=["training jobs"])

MAX_SOURCE_BYTES = 512 * 1024 * 1024


@router.put("/sources", status_code=status.HTTP_201_CREATED)
async def upload_source(request: Request, state: StateDep) -> SourceUploaded:
    """A .tar.gz of the source directory, stored by content hash (so re-uploads are free)."""
    too_large = (
        f"Source snapshots are limited to {MAX_SOURCE_BYTES // 2**20} MiB; keep data "
        "out of the source directory and pass it as an input channel."
    )
    path, size = await store_archive(
        request, state.artifacts, "sources", MAX_SOURCE_BYTES, too_large, "The source"
    )
    return SourceUploaded(source_uri=path, size=size)


@router.post("/jobs", status_code=status.HTTP_201_CREATED)
def create_job(body: JobCreate, session: SessionDep, state: StateDep) -> TrainingJob:
    nodes = state.executor.nodes  # the check against body.nodes is the executor's
    row = job_service.submit(session, body, state.artifacts, state.slots, nodes)
    return jobs.to_schema(session, row)


@router.get("/jobs")
def list_jobs(
    session: SessionDep,
    visible: VisibleDep,
    status: str | None = None,
    created_by: Annotated[str | None, Query(max_length=200)] = None,
) -> list[TrainingJob]:
    """The newest 200 jobs, by status or creator if asked."""
    rows = jobs.list_all(session, status, created_by=created_by, projects=visible)
    return [jobs.to_schema(session, row) for row in rows]


@router.get("/jobs/{name}")
def get_job(name: str, session: SessionDep) -> TrainingJob:
    return jobs.to_schema(session, jobs.get_row(session, name))


@router.post("/jobs/{name}/stop")
def stop_job(name: str, session: SessionDep) -> TrainingJob:
    """Ask the job to stop: SIGTERM to its processes, SIGKILL after the grace period."""
    row = jobs.get_row(session, name)
    jobs.request_stop(row)
    return jobs.to_schema(session, row)


@router.post("/jobs/{name}/rerun", status_code=status.HTTP_201_CREATED)
def rerun_job(
    name: str,
    session: SessionDep,
    state: StateDep,
    body: Annotated[JobRerun | None, Body()] = None,
) -> TrainingJob:
    """A new job with this one's request: a retry, or the same training again. Named
    ``body.name``, or ``NAME-rN``."""
    row = jobs.get_row(session, name)
    new = job_service.rerun(
        session,
        row,
        state.artifacts,
        state.slots,
        state.executor.nodes,
        body.name if body else None,
    )
    return jobs.to_schema(session, new)


@router.get("/jobs/{name}/logs")
def job_logs(
    name: str,
    session: SessionDep,
    state: StateDep,
    offset: Annotated[int, Query(ge=0)] = 0,
    rank: Annotated[int | None, Query(ge=0)] = None,
    limit: Annotated[int, Query(ge=1, le=8 * 1024 * 1024)] = 1024 * 1024,
) -> JobLogs:
    """The combined log from byte ``offset`` on; ``rank`` keeps only that rank's lines."""
    row = jobs.get_row(session, name)
    chunk = job_service.read_log(row, state.executor, offset, limit, rank)
    complete = Status(row.status).terminal and chunk.eof
    return JobLogs(text=chunk.text, offset=chunk.offset, complete=complete)
