"""What an elastic job's rank 0 tells its supervisor at each round: the world's size and
the step it resumed from. The supervisor turns these into the job's resize events
(``naiad jobs show``); without them a resize still happens, it just goes unrecorded.

``init_distributed`` and ``checkpoints.latest`` call ``report_round``; a script that does
neither can call it itself. Outside an elastic job it does nothing.
"""

import contextlib
import json
import os
import time
from pathlib import Path

ROUNDS_ENV = "NAIAD_ELASTIC_ROUNDS"  # set by the supervisor for an elastic job's workers


def report_round(step: int | None = None) -> None:
    """Rank 0: record this round's world size, and ``step`` once it is known."""
    folder = os.environ.get(ROUNDS_ENV)
    if not folder or int(os.environ.get("RANK", 0)) != 0:
        return
    path = Path(folder) / f"round-{os.getpid()}.json"  # a round's workers are new processes
    data = {"world_size": int(os.environ.get("WORLD_SIZE", 1)), "at": time.time()}
    with contextlib.suppress(OSError, ValueError):  # the round's earlier report
        data = {**data, **json.loads(path.read_text())}
    if step is not None:
        data["step"] = int(step)
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(OSError):  # the record is a courtesy; training goes on without it
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)
