"""Labelled arrays from a channel directory: what evaluation jobs and the examples read.

Two layouts, found by file suffix: ``.npz`` files holding ``x`` and ``y`` arrays
(``inputs``/``labels`` also work), or ``.csv`` files with a header whose label column
is ``label`` (else the last column). Several files are concatenated in name order.
"""

from pathlib import Path

import numpy as np

from naiad.core.errors import InvalidInput

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


def save_npz(path: str | Path, x: np.ndarray, y: np.ndarray) -> Path:
    """Write a labelled split in the layout :func:`load_labelled` reads."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=x, y=y)
    return path


def load_labelled(directory: str | Path) -> tuple[np.ndarray, np.ndarray]:
    root = Path(directory)
    files = sorted(p for p in root.rglob("*") if p.suffix in (".npz", ".csv") and p.is_file())
    if not files:
        raise InvalidInput(
            f"{root} holds no .npz or .csv files; put the labelled data there "
            "(.npz with arrays x and y, or .csv with a 'label' column)."
        )
    parts = [_npz(p) if p.suffix == ".npz" else _csv(p) for p in files]
    return np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])
