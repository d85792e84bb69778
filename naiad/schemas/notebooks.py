"""Managed notebook servers: JupyterLab processes the server keeps, reached through its URL.

Statuses are SageMaker's NotebookInstanceStatus: Pending (starting), InService,
Stopping, Stopped (files kept), Failed (would not start), Deleting.
"""

import re
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from naiad.schemas.common import ParamValue, Text, Timestamp, Wire

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
    requirements: str | None = Field(
        default=None,
        max_length=64 * 1024,
        description="A requirements.txt's text: written to its files at the first start, "
        "and its packages installed into the notebook's own environment before JupyterLab.",
    )
    idle_timeout_s: int | None = Field(
        default=DEFAULT_IDLE_S,
        ge=10,
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


class NotebookJobCreate(Wire):
    """Run one of a notebook's files as a training job (the console's "Run as job")."""

    path: str = Field(min_length=1, max_length=1000, description="e.g. train.ipynb, in its files.")
    hyperparameters: dict[str, ParamValue] = Field(
        default_factory=dict, description="Injected after its cell tagged 'parameters'."
    )
    job_name: str | None = Field(default=None, description="Default: the file's stem and a time.")
    experiment: str | None = Field(default=None, description="Default: the notebook's name.")
    processes_per_node: int = Field(default=1, ge=1, le=1024)
