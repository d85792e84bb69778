"""Reading a series for the wire: whole or downsampled, encoded straight from numpy.

A million points must not go through a million Python objects, so the JSON is
written by orjson from the arrays; only non-finite values need a Python list.
"""

import numpy as np
import orjson
from sqlalchemy.orm import Session

from naiad.core.series import downsample
from naiad.store import metrics


def _json_values(values: np.ndarray) -> np.ndarray | list[float | str]:
    """numpy when every value is finite (fast path); else a list with NaN/Infinity as strings."""
    finite = np.isfinite(values)
    if finite.all():
        return values
    out: list[float | str] = values.tolist()
    for i in np.flatnonzero(~finite).tolist():
        v = values[i]
        out[i] = "NaN" if np.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
    return out


def history_json(session: Session, run_id: str, key: str, max_points: int | None) -> bytes:
    """The MetricHistory document for one series, as JSON bytes."""
    series = metrics.read_series(session, run_id, key)
    body: dict[str, object] = {"key": key, "total_points": len(series)}
    if max_points is not None and len(series) > max_points:
        buckets = downsample(series, max_points)
        body |= {
            "downsampled": True,
            "steps": buckets.steps,
            "timestamps": buckets.timestamps,
            "values": _json_values(buckets.values),
            "min": _json_values(buckets.min),
            "max": _json_values(buckets.max),
            "count": buckets.count,
        }
    else:
        body |= {
            "downsampled": False,
            "steps": series.steps,
            "timestamps": series.timestamps,
            "values": _json_values(series.values),
        }
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
