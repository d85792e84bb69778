"""Where an object belongs and who made it, by the kind and key its URL names: what the
access check needs for a call on an existing object (its project's role; an editor deletes
only what they created)."""

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from naiad.store.tables import (
    EndpointRow,
    ExperimentRow,
    JobRow,
    ModelRow,
    RunRow,
    TuningJobRow,
)


@dataclass(frozen=True)
class Owner:
    project: str
    created_by: str | None  # None: made before creators were recorded


def owner_of(session: Session, kind: str, key: str) -> Owner | None:
    """None when there is no such object (its route then answers 404)."""
    if kind == "runs":
        query = (
            select(ExperimentRow.project, RunRow.created_by)
            .join(ExperimentRow, ExperimentRow.id == RunRow.experiment_id)
            .where(RunRow.id == key)
        )
    elif kind == "experiments":
        by_name = select(ExperimentRow.project, ExperimentRow.created_by)
        query = by_name.where((ExperimentRow.name == key) | (ExperimentRow.id == key))
    else:
        table: type[JobRow | TuningJobRow | ModelRow | EndpointRow] = {  # type: ignore[assignment]
            "jobs": JobRow,
            "tuning-jobs": TuningJobRow,
            "models": ModelRow,
            "endpoints": EndpointRow,
        }[kind]
        query = select(table.project, table.created_by).where(table.name == key)
    row = session.execute(query).first()
    return None if row is None else Owner(row[0], row[1])
