"""/api/v1/audit: every write made to this server, newest first (admin only)."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from naiad.schemas.audit import AuditEvent
from naiad.server.deps import SessionDep
from naiad.store import audit

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("")
def list_events(
    session: SessionDep,
    since: Annotated[datetime | None, Query(description="Only events at or after this.")] = None,
    actor: Annotated[
        str | None, Query(max_length=200, description="admin, console, job:NAME, key:ID.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[
        int | None, Query(ge=1, le=2**63 - 1, description="An event id: the page after.")
    ] = None,
) -> list[AuditEvent]:
    """Who wrote what, when and from where, with the status the server answered."""
    return audit.listed(session, since, actor, limit, before)
