"""Training job rows and their timeline. Status moves go through ``transition`` only."""

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from naiad.core.errors import Conflict, NotFound
from naiad.core.ids import new_id
from naiad.core.status import Status, check_transition
from naiad.schemas.jobs import JobCreate, JobEvent, JobSpec, TrainingJob, Transition
from naiad.store.tables import JobEventRow, JobRow, JobTransitionRow, utcnow

ACTIVE = (Status.STARTING.value, Status.RUNNING.value, Status.STOPPING.value)


def get_row(session: Session, name: str) -> JobRow:
    row = session.scalar(select(JobRow).where(JobRow.name == name))
    if row is None:
        raise NotFound(f"No training job named {name!r}; list them with `naiad jobs ls`.")
    return row


def run_status_project(session: Session, name: str) -> tuple[str, str, str] | None:
    """The job's run id, status and project, without loading its spec (checked on every
    call a job makes with its own token)."""
    query = select(JobRow.run_id, JobRow.status, JobRow.project).where(JobRow.name == name)
    found = session.execute(query).first()
    return None if found is None else (found[0], found[1], found[2])


def to_schema(session: Session, row: JobRow) -> TrainingJob:
    transitions = session.scalars(
        select(JobTransitionRow)
        .where(JobTransitionRow.job_id == row.id)
        .order_by(JobTransitionRow.id)
    )
    events = session.scalars(
        select(JobEventRow).where(JobEventRow.job_id == row.id).order_by(JobEventRow.seq)
    )
    return TrainingJob(
        **row.spec.model_dump(),
        name=row.name,
        status=row.status,
        status_reason=row.status_reason,
        priority=row.priority,
        run_id=row.run_id,
        attempt=row.attempt,
        created_at=row.created_at,
        started_at=row.started_at,
        ended_at=row.ended_at,
        transitions=[Transition(status=t.status, reason=t.reason, at=t.at) for t in transitions],
        events=[JobEvent.model_validate(e, from_attributes=True) for e in events],
        created_by=row.created_by,
        project=row.project,
    )


def create(session: Session, body: JobCreate, run_id: str, output_uri: str) -> JobRow:
    if session.scalar(select(JobRow.id).where(JobRow.name == body.name)) is not None:
        raise Conflict(
            f"A training job named {body.name!r} already exists; job names are unique, "
            "pick another (e.g. add a suffix like -2)."
        )
    row = JobRow(
        id=new_id(),
        name=body.name,
        status=Status.PENDING.value,
        spec=JobSpec.of(body, output_uri),
        priority=body.priority,
        run_id=run_id,
    )
    session.add(row)
    session.flush()
    session.add(JobTransitionRow(job_id=row.id, status=row.status, reason="Submitted."))
    return row


def add_events(session: Session, row: JobRow, events: Sequence[Mapping[str, Any]]) -> None:
    """Store the supervisor's resize events this row does not have yet (by their ``seq``)."""
    if not events:
        return
    query = select(func.max(JobEventRow.seq)).where(JobEventRow.job_id == row.id)
    last = session.scalar(query)
    for event in events:
        if last is not None and event["seq"] <= last:
            continue
        session.add(
            JobEventRow(
                job_id=row.id,
                seq=event["seq"],
                at=datetime.fromtimestamp(event["at"], UTC),
                from_workers=event["from_workers"],
                to_workers=event["to_workers"],
                step=event.get("step"),
                reason=event["reason"],
            )
        )


def transition(
    session: Session, row: JobRow, status: Status, reason: str | None, at: datetime | None = None
) -> bool:
    """Move the job and record why (``at``: when it happened, if not now); False when it
    is already there (idempotent)."""
    if row.status == status.value:
        return False
    check_transition(Status(row.status), status, "training job")
    at = at or utcnow()
    row.status = status.value
    row.status_reason = reason
    if status == Status.RUNNING and row.started_at is None:
        row.started_at = at
    if status.terminal:
        row.ended_at = at
    session.add(JobTransitionRow(job_id=row.id, status=status.value, reason=reason, at=at))
    session.flush()
    return True


def request_stop(row: JobRow, reason: str | None = None) -> None:
    """Ask a job to stop (the scheduler passes it on); ``reason``: why, when not a person."""
    if not Status(row.status).terminal and not row.stop_requested:
        row.stop_requested = True
        row.stop_reason = reason


def stop_reason(row: JobRow) -> str:
    return row.stop_reason or "Stop requested."


def list_all(
    session: Session,
    status: str | None = None,
    limit: int = 200,
    created_by: str | None = None,
    projects: set[str] | None = None,
) -> list[JobRow]:
    query = select(JobRow).order_by(JobRow.created_at.desc()).limit(limit)
    if projects is not None:
        query = query.where(JobRow.project.in_(projects))
    if status:
        query = query.where(JobRow.status == status)
    if created_by:
        query = query.where(JobRow.created_by == created_by)
    return list(session.scalars(query))


def names_starting(session: Session, prefix: str) -> set[str]:
    """Names of the jobs whose name starts with ``prefix`` (a literal, not a pattern)."""
    query = select(JobRow.name).where(JobRow.name.startswith(prefix, autoescape=True))
    return set(session.scalars(query))


def active(session: Session) -> list[JobRow]:
    return list(session.scalars(select(JobRow).where(JobRow.status.in_(ACTIVE))))


def pending(
    session: Session, limit: int | None = None, stop_requested: bool | None = None
) -> list[JobRow]:
    """The queue: higher priority first, then first come, first served (``limit``: its
    head; ``stop_requested``: only those asked, or not asked, to stop)."""
    query = (
        select(JobRow)
        .where(JobRow.status == Status.PENDING.value)
        .order_by(JobRow.priority.desc(), JobRow.created_at, JobRow.id)
        .limit(limit)
    )
    if stop_requested is not None:
        query = query.where(JobRow.stop_requested == stop_requested)
    return list(session.scalars(query))
