"""Checkpoints in the job's checkpoint directory: atomic saves, the latest one on resume.

Files load with ``torch.load(weights_only=True)``, so resuming never runs pickled code.
"""

import os
import re
from pathlib import Path
from typing import Any

from naiad.runtime.elastic import report_round

_NAME = re.compile(r"^ckpt-(\d{12})\.pt$")


def directory() -> Path:
    from naiad.runtime.context import context

    return context().checkpoint_dir


def _all(where: Path) -> list[tuple[int, Path]]:
    if not where.is_dir():
        return []
    found = [(int(m[1]), p) for p in where.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def save(state: dict[str, Any], step: int, keep: int = 3, where: Path | None = None) -> Path | None:
    """Write ``state`` for ``step`` atomically (rank 0 only) and keep the newest ``keep``."""
    import torch

    if int(os.environ.get("RANK", 0)) != 0:
        return None
    from naiad.sdk.run import active_run

    if (run := active_run()) is not None:
        # the metrics up to this step first: a resume from this checkpoint repeats none of
        # them and (the run keeping each step once) must not find any missing
        run.persist()
    where = where or directory()
    where.mkdir(parents=True, exist_ok=True)
    path = where / f"ckpt-{step:012d}.pt"
    tmp = where / f".{path.name}.tmp"
    torch.save({"step": step, "state": state}, tmp)
    os.replace(tmp, path)
    for _, old in _all(where)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def latest(where: Path | None = None, map_location: str | None = "cpu") -> dict[str, Any] | None:
    """``{"step": n, "state": ...}`` of the newest checkpoint, or None on a first attempt.

    In an elastic job this is where each round says the step it resumes from.
    """
    import torch

    found = _all(where or directory())
    if not found:
        report_round(step=0)
        return None
    loaded = torch.load(found[-1][1], map_location=map_location, weights_only=True)
    report_round(step=int(loaded.get("step", found[-1][0])))
    return loaded
