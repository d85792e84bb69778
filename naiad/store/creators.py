"""Who created an object, for the rule that an editor deletes only what they created."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from naiad.store.tables import EndpointRow, ExperimentRow, JobRow, ModelRow, RunRow

_BY_KIND = {
    "runs": (RunRow.created_by, RunRow.id),
    "experiments": (ExperimentRow.created_by, ExperimentRow.name),
    "jobs": (JobRow.created_by, JobRow.name),
    "models": (ModelRow.created_by, ModelRow.name),
    "endpoints": (EndpointRow.created_by, EndpointRow.name),
}


def creator_of(session: Session, kind: str, key: str) -> tuple[str | None] | None:
    """(the creator's name,), None inside when made before creators were recorded; None
    when there is no such object (its route then answers 404)."""
    column, by = _BY_KIND[kind]
    row = session.execute(select(column).where(by == key)).first()
    return None if row is None else (row[0],)
