"""Generate a tabular classification problem as CSV: train.csv, validation.csv, test.csv.

    python examples/tabular/make_data.py data/tabular

Twenty numeric features (some informative, some noise, on different scales), three
classes, a header row and a ``label`` column: the shape of table people bring.
"""

import sys
from pathlib import Path

import numpy as np

SPLITS = {"train": 0.7, "validation": 0.15, "test": 0.15}


def make(dest: str | Path, rows: int = 3000, seed: int = 0) -> dict[str, Path]:
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=rows,
        n_features=20,
        n_informative=8,
        n_redundant=4,
        n_classes=3,
        class_sep=1.2,
        random_state=seed,
    )
    x = x * np.random.default_rng(seed).uniform(0.1, 100, size=x.shape[1])  # unscaled columns
    header = ",".join([f"f{i}" for i in range(x.shape[1])] + ["label"])
    bounds = np.cumsum([int(f * rows) for f in SPLITS.values()])[:-1]
    paths = {}
    for name, xs, ys in zip(SPLITS, np.split(x, bounds), np.split(y, bounds), strict=True):
        paths[name] = Path(dest) / name
        paths[name].mkdir(parents=True, exist_ok=True)
        table = np.column_stack([xs, ys])
        fmt = ["%.6g"] * xs.shape[1] + ["%d"]
        np.savetxt(
            paths[name] / f"{name}.csv", table, delimiter=",", header=header, comments="", fmt=fmt
        )
    return paths


if __name__ == "__main__":
    for split, path in make(sys.argv[1] if len(sys.argv) > 1 else "data/tabular").items():
        print(f"{split}: {path}")
