"""Experiment wire models."""

from typing import Annotated

from pydantic import BaseModel, Field

from naiad.schemas.common import Text, Timestamp, Wire

ExperimentName = Annotated[Text, Field(min_length=1, max_length=200)]


class ExperimentCreate(Wire):
    name: ExperimentName
    description: Text = Field(default="", max_length=5000)
    tags: dict[str, Text] = Field(default_factory=dict)


class ExperimentUpdate(Wire):
    description: Text | None = Field(default=None, max_length=5000)
    tags: dict[str, Text] | None = None


class Experiment(BaseModel):
    id: str
    name: str
    description: str
    tags: dict[str, str]
    created_at: Timestamp
    run_count: int = 0
    project: str = Field(default="default", description="The project it belongs to.")
    created_by: str | None = Field(
        default=None, description="Its creator: a user, or admin (None: made before users existed)."
    )
