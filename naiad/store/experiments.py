"""Experiment CRUD. Functions take a Session inside the caller's transaction."""

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from naiad.core import principals
from naiad.core.errors import Conflict, NotFound
from naiad.core.ids import new_id
from naiad.core.names import check_key, check_name
from naiad.schemas.experiments import Experiment, ExperimentCreate, ExperimentUpdate
from naiad.store.db import insert_new
from naiad.store.tables import ExperimentRow, RunRow, utcnow


def _to_schema(row: ExperimentRow, run_count: int = 0) -> Experiment:
    return Experiment(
        id=row.id,
        name=row.name,
        description=row.description,
        tags=row.tags or {},
        created_at=row.created_at,
        run_count=run_count,
        project=row.project,
        created_by=row.created_by,
    )


def _row_by_name(session: Session, name: str) -> ExperimentRow | None:
    return session.scalar(select(ExperimentRow).where(ExperimentRow.name == name))


def _run_count(session: Session, experiment_id: str) -> int:
    query = select(func.count()).select_from(RunRow).where(RunRow.experiment_id == experiment_id)
    return session.scalar(query) or 0


def _check_tags(tags: dict[str, str]) -> dict[str, str]:
    for key in tags:
        check_key(key, "Experiment tag key")
    return tags


def create(session: Session, body: ExperimentCreate) -> Experiment:
    check_name(body.name, "Experiment name")
    _check_tags(body.tags)
    if _row_by_name(session, body.name) is not None:
        raise Conflict(f"An experiment named {body.name!r} already exists; pick another name.")
    row = ExperimentRow(id=new_id(), name=body.name, description=body.description, tags=body.tags)
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(f"An experiment named {body.name!r} already exists.") from None
    return _to_schema(row)


def get_or_create(session: Session, name: str) -> ExperimentRow:
    """The experiment a new run goes into; created on first use, as people expect."""
    check_name(name, "Experiment name")
    row = _row_by_name(session, name)
    if row is not None:
        principals.require(row.project, "editor", f"A run in experiment {name!r}")
        return row
    values = {
        "id": new_id(),
        "name": name,
        "description": "",
        "tags": {},
        "created_at": utcnow(),
        "project": principals.project(),
        "created_by": principals.creator(),
    }
    insert_new(session, ExperimentRow, values, ["name"])  # or created meanwhile by another request
    row = _row_by_name(session, name)
    assert row is not None
    return row


def get_row(session: Session, name_or_id: str) -> ExperimentRow:
    row = _row_by_name(session, name_or_id) or session.get(ExperimentRow, name_or_id)
    if row is None:
        raise NotFound(
            f"No experiment named {name_or_id!r}; list them with `naiad experiments ls`."
        )
    return row


def get(session: Session, name_or_id: str) -> Experiment:
    row = get_row(session, name_or_id)
    return _to_schema(row, _run_count(session, row.id))


def list_all(session: Session, projects: set[str] | None = None) -> list[Experiment]:
    counts = (
        select(RunRow.experiment_id, func.count().label("n"))
        .group_by(RunRow.experiment_id)
        .subquery()
    )
    query = (
        select(ExperimentRow, func.coalesce(counts.c.n, 0))
        .outerjoin(counts, counts.c.experiment_id == ExperimentRow.id)
        .order_by(ExperimentRow.created_at.desc())
    )
    if projects is not None:
        query = query.where(ExperimentRow.project.in_(projects))
    return [_to_schema(row, n) for row, n in session.execute(query)]


def update(session: Session, name_or_id: str, body: ExperimentUpdate) -> Experiment:
    row = get_row(session, name_or_id)
    if body.description is not None:
        row.description = body.description
    if body.tags is not None:
        row.tags = {**(row.tags or {}), **_check_tags(body.tags)}
    session.flush()
    return _to_schema(row, _run_count(session, row.id))


def delete(session: Session, name_or_id: str) -> None:
    session.delete(get_row(session, name_or_id))
