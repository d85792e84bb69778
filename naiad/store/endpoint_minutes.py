"""Saved endpoint traffic: one row per (endpoint, variant, minute); merging is the caller's."""

from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.orm import Session

from naiad.store.tables import EndpointMinuteRow


def existing(
    session: Session, endpoint_id: str, variant: str, minutes: Iterable[int]
) -> dict[int, EndpointMinuteRow]:
    """The rows already saved for these minutes (a minute is saved in parts)."""
    rows = session.scalars(
        select(EndpointMinuteRow).where(
            EndpointMinuteRow.endpoint_id == endpoint_id,
            EndpointMinuteRow.variant == variant,
            EndpointMinuteRow.minute.in_(list(minutes)),
        )
    )
    return {row.minute: row for row in rows}


def since(session: Session, endpoint_id: str, minute: int) -> list[EndpointMinuteRow]:
    """Every variant's minutes from ``minute`` on, oldest first."""
    return list(
        session.scalars(
            select(EndpointMinuteRow)
            .where(EndpointMinuteRow.endpoint_id == endpoint_id, EndpointMinuteRow.minute >= minute)
            .order_by(EndpointMinuteRow.minute)
        )
    )


def prune(session: Session, before: int) -> int:
    """Delete every endpoint's minutes older than ``before``; how many went."""
    statement = delete(EndpointMinuteRow).where(EndpointMinuteRow.minute < before)
    result = cast(CursorResult[Any], session.execute(statement))  # a DELETE's result has one
    return result.rowcount or 0
