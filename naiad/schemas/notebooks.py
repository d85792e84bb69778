"""Managed notebook servers: JupyterLab processes the server keeps, reached through its URL.

Statuses are SageMaker's NotebookInstanceStatus: Pending (starting), InService,
Stopping, Stopped (files kept), Failed (would not start), Deleting.
"""

import re
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from naiad.schemas.common import Text, Timestamp, Wire

NotebookStatus = Literal["Pending", "InService", "Stopping", "Stopped", "Failed", "Deleting"]
RUNNING = ("Pending", "InService")
_NAME = re.compile(r"[A-Za-z0-9](-*[A-Za-z0-9]){0,62}")
DEFAULT_IDLE_S = 3600


class NotebookCreate(Wire):
    name: str = Field(description="Unique: letters, digits and '-', up to 63 (SageMaker's rule).")
    source_uri: str | None = Field(
        default=None,
        description="What PUT /sources answered: its files are the notebook's working "
        "directory at creation (a requirements.txt there gives its kernel those packages).",
    )
    idle_timeout_s: int | None = Field(
        default=DEFAULT_IDLE_S,
        ge=60,
        le=30 * 24 * 3600,
        description="Stop it after this long with no activity (its files are kept); null: never.",
    )
    description: Text = Field(default="", max_length=500)

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if len(name) > 63 or not _NAME.fullmatch(name):
            raise ValueError(
                f"notebook name {name[:80]!r} is not valid: use up to 63 letters, digits and "
                "'-', starting and ending with a letter or digit"
            )
        return name


class Notebook(BaseModel):
    name: str
    status: NotebookStatus
    status_reason: str | None = None
    url: str = Field(description="Where it opens, on this server: /notebooks/NAME/lab.")
    idle_timeout_s: int | None
    source_uri: str | None = None
    description: str = ""
    created_at: Timestamp
    started_at: Timestamp | None = None
    last_activity_at: Timestamp | None = Field(
        default=None, description="The last request or kernel activity JupyterLab saw."
    )
    restarts: int = 0
