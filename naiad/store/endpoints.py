"""Endpoint rows, their timeline and their autoscaling decisions. Status moves go through
``transition`` only.

``spec`` (``EndpointSpec``) is what the keeper reconciles towards; a change is a new spec
given to ``set_spec``.
"""

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from naiad.core.errors import Conflict, NotFound
from naiad.core.ids import new_id
from naiad.core.status import EndpointStatus, check_endpoint_transition
from naiad.schemas.endpoints import EndpointSpec
from naiad.store.tables import EndpointRow, EndpointScalingRow, EndpointTransitionRow, utcnow


def find_row(session: Session, name: str) -> EndpointRow | None:
    return session.scalar(select(EndpointRow).where(EndpointRow.name == name))


def get_row(session: Session, name: str) -> EndpointRow:
    row = find_row(session, name)
    if row is None:
        raise NotFound(f"No endpoint named {name!r}; list them with `naiad endpoints ls`.")
    return row


def create(session: Session, name: str, spec: EndpointSpec, reason: str) -> EndpointRow:
    taken = find_row(session, name)
    if taken is not None:
        hint = (
            "it is being deleted; wait a moment"
            if taken.status == EndpointStatus.DELETING
            else "update it with `naiad endpoints update`, or pick another name"
        )
        raise Conflict(f"An endpoint named {name!r} already exists; {hint}.")
    row = EndpointRow(
        id=new_id(),
        name=name,
        status=EndpointStatus.CREATING.value,
        spec=spec,
        status_reason=reason,
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        raise Conflict(
            f"An endpoint named {name!r} was created at the same moment; pick another name."
        ) from None
    session.add(EndpointTransitionRow(endpoint_id=row.id, status=row.status, reason=reason))
    session.flush()
    return row


def transition(
    session: Session, row: EndpointRow, status: EndpointStatus, reason: str | None
) -> bool:
    """Move the endpoint and record why; a same-status move only refreshes the reason."""
    if row.status == status.value:
        if reason != row.status_reason:
            row.status_reason = reason
            row.updated_at = utcnow()
        return False
    check_endpoint_transition(EndpointStatus(row.status), status)
    row.status = status.value
    row.status_reason = reason
    row.updated_at = utcnow()
    session.add(EndpointTransitionRow(endpoint_id=row.id, status=status.value, reason=reason))
    session.flush()
    return True


def set_spec(row: EndpointRow, spec: EndpointSpec) -> None:
    """Replace the spec: a new object, so the JSON column is seen as changed."""
    row.spec = spec
    row.updated_at = utcnow()


def transitions(session: Session, row: EndpointRow) -> list[EndpointTransitionRow]:
    query = (
        select(EndpointTransitionRow)
        .where(EndpointTransitionRow.endpoint_id == row.id)
        .order_by(EndpointTransitionRow.id)
    )
    return list(session.scalars(query))


def record_scaling(
    session: Session, row: EndpointRow, variant: str, before: int, after: int, reason: str
) -> None:
    """One autoscaling decision, beside the timeline (the status does not change)."""
    session.add(
        EndpointScalingRow(
            endpoint_id=row.id,
            variant=variant,
            from_replicas=before,
            to_replicas=after,
            reason=reason,
        )
    )
    session.flush()


def scaling_events(session: Session, row: EndpointRow, limit: int) -> list[EndpointScalingRow]:
    """The latest ``limit`` decisions, oldest first."""
    query = (
        select(EndpointScalingRow)
        .where(EndpointScalingRow.endpoint_id == row.id)
        .order_by(EndpointScalingRow.id.desc())
        .limit(limit)
    )
    return list(reversed(list(session.scalars(query))))


def prune_scaling_events(session: Session, before: datetime) -> None:
    """Forget decisions older than ``before`` (they go with the saved traffic minutes)."""
    session.execute(delete(EndpointScalingRow).where(EndpointScalingRow.at < before))


def list_all(session: Session, lock: bool = False) -> list[EndpointRow]:
    """Every endpoint by name; ``lock`` holds the rows until the transaction ends (PostgreSQL),
    so the keeper and a request never both act on the same stale row."""
    query = select(EndpointRow).order_by(EndpointRow.name)
    if lock:
        query = query.with_for_update()
    return list(session.scalars(query))


def delete_row(session: Session, row: EndpointRow) -> None:
    session.delete(row)
    session.flush()


def names_serving(session: Session, model: str) -> list[str]:
    """Endpoints with a variant serving (or rolling out) any version of ``model``, which
    deleting the model would break."""
    rows = session.scalars(select(EndpointRow))
    return sorted(
        row.name
        for row in rows
        if any(v.model.split(":")[0] == model for v in row.spec.every_variant())
    )
