"""A metric series as the SDK hands it back: numpy columns, NaN and inf restored."""

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class MetricSeries:
    key: str
    total_points: int
    downsampled: bool
    steps: np.ndarray
    timestamps: np.ndarray
    values: np.ndarray
    min: np.ndarray | None = None  # per bucket, when downsampled
    max: np.ndarray | None = None
    count: np.ndarray | None = None

    @classmethod
    def from_wire(cls, body: dict[str, Any]) -> "MetricSeries":
        def floats(name: str) -> np.ndarray | None:
            raw = body.get(name)
            return None if raw is None else np.array(raw, dtype=np.float64)

        count = body.get("count")
        return cls(
            key=body["key"],
            total_points=body["total_points"],
            downsampled=body["downsampled"],
            steps=np.array(body["steps"], dtype=np.int64),
            timestamps=np.array(body["timestamps"], dtype=np.float64),
            values=np.array(body["values"], dtype=np.float64),
            min=floats("min"),
            max=floats("max"),
            count=None if count is None else np.array(count, dtype=np.int64),
        )

    def __len__(self) -> int:
        return int(self.steps.shape[0])
