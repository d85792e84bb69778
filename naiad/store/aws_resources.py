"""SageMaker objects as the SageMaker API knows them (see ``AwsResourceRow``)."""

from sqlalchemy import select
from sqlalchemy.orm import Session

from naiad.core.errors import Conflict
from naiad.store.db import insert_new
from naiad.store.tables import AwsResourceRow, utcnow


def find(session: Session, kind: str, name: str) -> AwsResourceRow | None:
    return session.get(AwsResourceRow, (kind, name))


def create(
    session: Session,
    kind: str,
    name: str,
    request: dict,
    tags: dict[str, str],
    ref: str | None = None,
) -> AwsResourceRow:
    """Conflict when one of that kind and name exists, even one made at the same moment."""
    now = utcnow()
    values = {
        "kind": kind,
        "name": name,
        "request": request,
        "tags": tags,
        "ref": ref,
        "created_at": now,
        "updated_at": now,
    }
    if not insert_new(session, AwsResourceRow, values, ["kind", "name"]):
        raise Conflict(f"A {kind} named {name!r} already exists.")
    row = session.get(AwsResourceRow, (kind, name))
    assert row is not None
    return row


def listed(session: Session, kind: str) -> list[AwsResourceRow]:
    query = select(AwsResourceRow).where(AwsResourceRow.kind == kind)
    return list(session.scalars(query.order_by(AwsResourceRow.created_at)))


def update(session: Session, row: AwsResourceRow, **changes: object) -> None:
    """Replace whole columns (JSON columns do not see changes made inside a value)."""
    for key, value in changes.items():
        setattr(row, key, value)
    row.updated_at = utcnow()
    session.flush()


def delete(session: Session, row: AwsResourceRow) -> None:
    session.delete(row)
    session.flush()
