"""Reading a series for the wire: whole or downsampled, encoded straight from numpy.

A million points must not go through a million Python objects, so the JSON is
written by orjson from the arrays; only non-finite values need a Python list.
"""

import numpy as np
import orjson
from sqlalchemy.orm import Session

from naiad.core.series import Buckets
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
    history = metrics.read_history(session, run_id, key, max_points)
    if isinstance(history, Buckets):
        body: dict[str, object] = {
            "key": key,
            "total_points": int(history.count.sum()),
            "downsampled": True,
            "steps": history.steps,
            "timestamps": history.timestamps,
            "values": _json_values(history.values),
            "min": _json_values(history.min),
            "max": _json_values(history.max),
            "count": history.count,
        }
    else:
        body = {
            "key": key,
            "total_points": len(history),
            "downsampled": False,
            "steps": history.steps,
            "timestamps": history.timestamps,
            "values": _json_values(history.values),
        }
    return orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
