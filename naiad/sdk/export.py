"""Metric export in long format (key, step, timestamp, value): CSV or Parquet."""

import csv
from pathlib import Path

from naiad.core.errors import InvalidInput
from naiad.sdk.series import MetricSeries

FORMATS = ("csv", "parquet")


def write_points(series: list[MetricSeries], path: Path, format: str) -> Path:
    if format not in FORMATS:
        raise InvalidInput(f"Unknown export format {format!r}; use one of {', '.join(FORMATS)}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    if format == "parquet":
        import numpy as np
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table(
            {
                "key": pa.array([s.key for s in series for _ in range(len(s))], pa.string()),
                "step": np.concatenate([s.steps for s in series] or [np.empty(0, np.int64)]),
                "timestamp": np.concatenate(
                    [s.timestamps for s in series] or [np.empty(0, np.float64)]
                ),
                "value": np.concatenate([s.values for s in series] or [np.empty(0, np.float64)]),
            }
        )
        pq.write_table(table, tmp)
    else:
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["key", "step", "timestamp", "value"])
            for s in series:
                writer.writerows(
                    zip(
                        [s.key] * len(s),
                        s.steps.tolist(),
                        s.timestamps.tolist(),
                        s.values.tolist(),
                        strict=True,
                    )
                )
    tmp.replace(path)
    return path
