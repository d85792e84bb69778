"""Labelled arrays from a channel directory: what evaluation jobs and the examples read.

Three layouts, found by file suffix: ``.npz`` files holding ``x`` and ``y`` arrays
(``inputs``/``labels`` also work), or ``.csv`` or ``.parquet`` files (what a table
channel is materialised as) whose label column is ``label`` (else the last column).
Several files are concatenated in name order. A streamed table channel
(``naiad-channel.json``) is read whole from its source.
"""

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from naiad.core.errors import InvalidInput
from naiad.data import STREAM_FILE

if TYPE_CHECKING:
    import pyarrow as pa

_X_KEYS = ("x", "inputs", "X", "features")
_Y_KEYS = ("y", "labels", "label", "targets")


def _pick(arrays: "np.lib.npyio.NpzFile", keys: tuple[str, ...], path: Path) -> np.ndarray:
    for key in keys:
        if key in arrays.files:
            return arrays[key]
    raise InvalidInput(f"{path.name} has arrays {arrays.files}; name them one of {list(keys)}.")


def _npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as arrays:
        return _pick(arrays, _X_KEYS, path), _pick(arrays, _Y_KEYS, path)


def _csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(path) as f:
        header = f.readline().strip().split(",")
    data = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    label = header.index("label") if "label" in header else len(header) - 1
    y = data[:, label].astype(np.int64)
    return np.delete(data, label, axis=1).astype(np.float32), y


def _parquet(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import pyarrow.parquet as pq

    return _columns(pq.read_table(path))


def _columns(table: "pa.Table") -> tuple[np.ndarray, np.ndarray]:
    names = table.column_names
    label = "label" if "label" in names else names[-1]
    y = table.column(label).to_numpy(zero_copy_only=False).astype(np.int64)
    x = [table.column(n).to_numpy(zero_copy_only=False) for n in names if n != label]
    return np.column_stack(x).astype(np.float32), y


def save_npz(path: str | Path, x: np.ndarray, y: np.ndarray) -> Path:
    """Write a labelled split in the layout :func:`load_labelled` reads."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=x, y=y)
    return path


def load_labelled(directory: str | Path) -> tuple[np.ndarray, np.ndarray]:
    root = Path(directory)
    if (root / STREAM_FILE).is_file():
        import pyarrow as pa

        from naiad.runtime.streams import source_of

        batches = list(source_of(root).batches())
        if not batches:
            raise InvalidInput(f"The table channel at {root} has no rows.")
        return _columns(pa.Table.from_batches(batches))
    suffixes = (".npz", ".csv", ".parquet")
    files = sorted(p for p in root.rglob("*") if p.suffix in suffixes and p.is_file())
    if not files:
        raise InvalidInput(
            f"{root} holds no .npz, .csv or .parquet files; put the labelled data there "
            "(.npz with arrays x and y, or a table with a 'label' column)."
        )
    readers = {".npz": _npz, ".csv": _csv, ".parquet": _parquet}
    parts = [readers[p.suffix](p) for p in files]
    return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])
