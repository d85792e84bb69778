"""Artifact listing entries."""

from pydantic import BaseModel


class Artifact(BaseModel):
    path: str  # relative to the run's artifact root
    is_dir: bool
    size: int | None = None
