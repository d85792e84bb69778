"""Write scikit-learn's bundled 8x8 digits as train/validation/test splits (.npz x, y).

    python examples/digits/prepare.py data/digits

Each split is a directory to pass as an input channel: ``--input train=data/digits/train``.
Nothing is downloaded; the split is the same on every run (fixed seed).
"""

import sys
from pathlib import Path

import numpy as np

SPLITS = {"train": 0.7, "validation": 0.15, "test": 0.15}


def prepare(dest: str | Path, seed: int = 0) -> dict[str, Path]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]  # (n, 1, 8, 8) in [0, 1]
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = x[order], y[order]
    bounds = np.cumsum([int(f * len(y)) for f in SPLITS.values()])[:-1]
    paths = {}
    for name, xs, ys in zip(SPLITS, np.split(x, bounds), np.split(y, bounds), strict=True):
        paths[name] = Path(dest) / name
        paths[name].mkdir(parents=True, exist_ok=True)
        np.savez(paths[name] / "digits.npz", x=xs, y=ys)
    return paths


if __name__ == "__main__":
    for split, path in prepare(sys.argv[1] if len(sys.argv) > 1 else "data/digits").items():
        print(f"{split}: {path}")
