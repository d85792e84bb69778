"""Audit log wire models: the writes made to this server, newest first."""

from pydantic import BaseModel, Field

from naiad.schemas.common import Timestamp


class AuditEvent(BaseModel):
    id: int
    at: Timestamp
    actor: str = Field(
        description="Who: admin (the admin token), console (the admin token's login cookie), "
        "user:NAME (a user's key or console session), job:NAME (a "
        "job's own token), key:ACCESS_KEY_ID (a SigV4-signed AWS call), or anonymous."
    )
    action: str = Field(description="The method, or for an AWS JSON call its operation.")
    path: str
    status: int = Field(description="The HTTP status the server answered.")
    client: str = Field(description="The caller's address, as the server saw it.")
