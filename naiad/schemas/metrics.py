"""Metric wire models. Points travel columnar; non-finite values as "NaN"/"Infinity"/"-Infinity".

JSON has no NaN, and a diverged run must still be stored and charted as diverged.
"""

import math
from typing import Annotated

from pydantic import BaseModel, Field, model_validator

from naiad.schemas.common import Wire


def encode_value(value: float) -> float | str:
    """A float as JSON can carry it."""
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


class MetricColumns(Wire):
    """One metric's points; pydantic reads "NaN"/"Infinity"/"-Infinity" as floats."""

    steps: list[int]
    timestamps: list[float]
    values: list[float]

    @model_validator(mode="after")
    def _same_length(self) -> "MetricColumns":
        n = len(self.values)
        if len(self.steps) != n or len(self.timestamps) != n:
            raise ValueError(
                f"steps, timestamps and values must have the same length; got "
                f"{len(self.steps)}, {len(self.timestamps)} and {n}"
            )
        return self


BatchId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")]


class MetricBatch(Wire):
    """Points for one run, keyed by metric; ``batch_id`` makes a retried POST a no-op."""

    batch_id: BatchId
    metrics: dict[str, MetricColumns]


class BatchResult(BaseModel):
    batch_id: str
    points: int
    duplicate: bool = Field(description="True when this batch id was already stored.")


class MetricHistory(BaseModel):
    """A series, whole or downsampled; in the latter each entry is a bucket with min/max/count."""

    key: str
    total_points: int
    downsampled: bool
    steps: list[int]
    timestamps: list[float]
    values: list[float | str]
    min: list[float | str] | None = None
    max: list[float | str] | None = None
    count: list[int] | None = None
