"""Write a generated regression table for the Keras example: 8 features and a target, as
``train/train.csv`` and ``test/test.csv`` (a header row, then numbers).

    python examples/keras-tabular/make_data.py data/keras-tabular
"""

import sys
from pathlib import Path

import numpy as np

FEATURES = 8


def table(rows: int, rng: np.random.Generator) -> np.ndarray:
    """The target is linear in the features plus an interaction a linear model misses."""
    x = rng.normal(size=(rows, FEATURES))
    weights = np.linspace(-1.0, 1.0, FEATURES)
    y = x @ weights + 0.5 * np.sin(2 * x[:, 0] * x[:, 1]) + rng.normal(scale=0.1, size=rows)
    return np.column_stack([x, y])


def make(root: Path, rows: int = 4000, seed: int = 0) -> dict[str, Path]:
    rng = np.random.default_rng(seed)
    header = ",".join([*(f"x{i}" for i in range(FEATURES)), "y"])
    found = {}
    for split, count in (("train", rows), ("test", rows // 4)):
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        np.savetxt(folder / f"{split}.csv", table(count, rng), delimiter=",", header=header,
                   comments="", fmt="%.6f")  # fmt: skip
        found[split] = folder
    return found


if __name__ == "__main__":
    for split, folder in make(
        Path(sys.argv[1] if len(sys.argv) > 1 else "data/keras-tabular")
    ).items():
        print(f"{split}: {folder}")
