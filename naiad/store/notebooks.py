"""Notebook rows: create, read, list, move between statuses, delete."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from naiad.core.errors import Conflict, NotFound
from naiad.schemas.notebooks import Notebook, NotebookCreate
from naiad.store.tables import NotebookRow, utcnow


def create(session: Session, body: NotebookCreate) -> NotebookRow:
    if session.get(NotebookRow, body.name) is not None:
        raise Conflict(
            f"A notebook named {body.name!r} exists; open it, start it "
            f"(`naiad notebooks start {body.name}`) or pick another name."
        )
    row = NotebookRow(
        name=body.name,
        status="Pending",
        source_uri=body.source_uri,
        requirements=body.requirements,
        idle_timeout_s=body.idle_timeout_s,
        description=body.description,
        restarts=0,
    )
    session.add(row)
    session.flush()
    return row


def get(session: Session, name: str) -> NotebookRow:
    row = session.get(NotebookRow, name)
    if row is None:
        raise NotFound(f"No notebook named {name!r}; list them with `naiad notebooks ls`.")
    return row


def listed(session: Session, status: str | None = None) -> list[NotebookRow]:
    query = select(NotebookRow).order_by(NotebookRow.created_at.desc(), NotebookRow.name)
    if status is not None:
        query = query.where(NotebookRow.status == status)
    return list(session.scalars(query))


def set_status(row: NotebookRow, status: str, reason: str | None = None) -> None:
    row.status, row.status_reason = status, reason
    if status == "InService" and row.started_at is None:
        row.started_at = utcnow()
    if status in ("Stopped", "Failed"):
        row.started_at = None


def shown(row: NotebookRow) -> Notebook:
    return Notebook(
        name=row.name,
        status=row.status,  # type: ignore[arg-type]  # only the statuses above are written
        status_reason=row.status_reason,
        url=f"/notebooks/{row.name}/lab",
        idle_timeout_s=row.idle_timeout_s,
        source_uri=row.source_uri,
        description=row.description,
        created_at=row.created_at,
        started_at=row.started_at,
        last_activity_at=row.last_activity_at,
        restarts=row.restarts,
    )
