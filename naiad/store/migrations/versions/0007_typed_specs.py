"""job specs read as typed models: old rows get the shape new submissions store

A job's ``spec`` is now read through a pydantic model (``JobSpec``). Jobs submitted before
metric definitions existed lack ``metric_definitions``, and their hyperparameters may hold
NaN, infinities or integers past 64 bits, which submissions have since stored as the
strings they print as. Those rows are brought to today's shape. Endpoint specs have kept
one shape since their table was created.

Revision ID: 0007
Revises: 0006
"""

import math
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

INT64 = 2**63


def _value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool) and not -INT64 <= value < INT64:
        return str(value)
    return value


def _normalised(spec: dict[str, Any]) -> dict[str, Any]:
    hyperparameters = spec.get("hyperparameters") or {}
    return {
        **spec,
        "hyperparameters": {key: _value(v) for key, v in hyperparameters.items()},
        "metric_definitions": spec.get("metric_definitions") or [],
    }


def upgrade() -> None:
    jobs = sa.table("jobs", sa.column("id", sa.String()), sa.column("spec", sa.JSON()))
    connection = op.get_bind()
    for job_id, spec in connection.execute(sa.select(jobs.c.id, jobs.c.spec)).all():
        if not isinstance(spec, dict):
            continue
        new = _normalised(spec)
        if new != spec:
            connection.execute(jobs.update().where(jobs.c.id == job_id).values(spec=new))


def downgrade() -> None:
    """Nothing to undo: the older code reads the new shape too."""
