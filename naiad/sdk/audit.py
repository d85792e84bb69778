"""client.audit: the writes made to the server, newest first (the admin's to read).

client.audit.list(since=datetime.now(UTC) - timedelta(hours=1), actor="job:train-3")
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from naiad.schemas.audit import AuditEvent
from naiad.sdk.http import Transport


class AuditLog:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def list(
        self,
        since: datetime | None = None,
        actor: str | None = None,
        limit: int = 100,
        before: int | None = None,
    ) -> list[AuditEvent]:
        """Events newest first; ``before`` (an event id) pages back from there."""
        params: dict[str, Any] = {"limit": limit}
        if since is not None:
            params["since"] = since.isoformat()
        if actor is not None:
            params["actor"] = actor
        if before is not None:
            params["before"] = before
        return [
            AuditEvent.model_validate(e) for e in self._t.request("GET", "/audit", params=params)
        ]
