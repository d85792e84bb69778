"""The audit log: one row per write, appended by ``server.audit`` after the answer."""

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from naiad.schemas.audit import AuditEvent
from naiad.store.tables import AuditEventRow


def record(session: Session, actor: str, action: str, path: str, status: int, client: str) -> None:
    session.add(
        AuditEventRow(
            actor=actor[:200], action=action[:200], path=path, status=status, client=client[:64]
        )
    )


def listed(
    session: Session,
    since: datetime | None = None,
    actor: str | None = None,
    limit: int = 100,
    before: int | None = None,
) -> list[AuditEvent]:
    """Newest first; ``before``: an id, for the next page."""
    query = select(AuditEventRow).order_by(AuditEventRow.id.desc()).limit(limit)
    if since is not None:
        query = query.where(AuditEventRow.at >= since)
    if actor is not None:
        query = query.where(AuditEventRow.actor == actor)
    if before is not None:
        query = query.where(AuditEventRow.id < before)
    return [AuditEvent.model_validate(r, from_attributes=True) for r in session.scalars(query)]
