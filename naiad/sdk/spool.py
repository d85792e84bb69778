"""Batches the server could not take yet, kept on disk in order until it can.

One directory per run; one file per batch, named so sorting gives the logging order.
Files are written atomically, so a crash leaves whole batches or none. :func:`replay`
sends them once the server is back (``naiad runs sync``).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from naiad.core.errors import NaiadError, ServerError, ServerUnreachable

if TYPE_CHECKING:
    from naiad.sdk.client import Runs


class Spool:
    def __init__(self, root: Path, run_id: str) -> None:
        self.dir = root / run_id
        self.run_id = run_id

    def write(self, batch: dict[str, Any]) -> Path:
        """Save a batch; on a full disk the OSError comes back and no partial file stays."""
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"{time.time_ns():020d}-{batch['batch_id']}.json"
        tmp = path.with_suffix(".tmp")
        try:
            tmp.write_bytes(orjson.dumps(batch))
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return path

    def pending(self) -> list[Path]:
        try:
            return sorted(self.dir.glob("*.json"))
        except OSError:
            return []

    def save_end(self, status: str, reason: str | None) -> None:
        """Remember the final status the server could not be told, for `naiad runs sync`."""
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / "end.tmp"
        tmp.write_bytes(orjson.dumps({"status": status, "reason": reason}))
        os.replace(tmp, self.dir / "end.status")

    def load_end(self) -> dict[str, Any] | None:
        try:
            return orjson.loads((self.dir / "end.status").read_bytes())
        except (OSError, ValueError):
            return None

    def clear_end(self) -> None:
        (self.dir / "end.status").unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.dir.rmdir()  # only succeeds once nothing is left

    @staticmethod
    def read(path: Path) -> dict[str, Any]:
        return orjson.loads(path.read_bytes())

    @staticmethod
    def remove(path: Path) -> None:
        path.unlink(missing_ok=True)


def spooled_runs(root: Path) -> list[str]:
    """Run ids with batches (or a final status) still waiting on disk."""
    if not root.is_dir():
        return []
    return sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir() and (any(p.glob("*.json")) or (p / "end.status").exists())
    )


def waiting(root: Path) -> dict[str, list[Path]]:
    """Each spooled run's batch files, in logging order."""
    return {run_id: Spool(root, run_id).pending() for run_id in spooled_runs(root)}


@dataclass
class Replayed:
    """What replaying one run's spool came to."""

    sent: int = 0
    duplicates: int = 0  # batches the server already had (a retry that had gone through)
    points: int = 0
    dropped: int = 0
    kept: int = 0
    problem: str | None = None  # why the batches ``kept`` or ``dropped`` did not go


def replay(
    runs: Runs,
    root: Path,
    drop_refused: bool = False,
    advance: Callable[[int], None] = lambda _: None,
    pending: dict[str, list[Path]] | None = None,
) -> dict[str, Replayed]:
    """Send every run's spooled batches (``pending``, else all :func:`waiting`), in order,
    each deleted once the server has it; then the final status a run could not report.

    A batch the server may take later (a server error) stops that run and stays with the
    rest; one refused for good (the run was deleted) stays too, or with ``drop_refused``
    goes. ``ServerUnreachable`` stops it all, leaving what is not sent on disk.
    ``advance(n)``: n more batches are done with, for a progress bar.
    """
    pending = waiting(root) if pending is None else pending
    return {
        run_id: _replay_run(runs, Spool(root, run_id), files, drop_refused, advance)
        for run_id, files in pending.items()
    }


def _replay_run(
    runs: Runs,
    spool: Spool,
    files: list[Path],
    drop_refused: bool,
    advance: Callable[[int], None],
) -> Replayed:
    outcome = Replayed()
    for i, path in enumerate(files):
        try:
            result = runs.log_batch(spool.run_id, Spool.read(path))
        except ServerUnreachable:
            raise  # nothing more can go now
        except ServerError as exc:  # may pass later: keep the rest, in order
            outcome.problem, outcome.kept = exc.message, len(files) - i
            advance(outcome.kept)
            return outcome
        except (NaiadError, ValueError) as exc:  # refused for good, or not a batch at all
            outcome.problem = (
                exc.message if isinstance(exc, NaiadError) else f"{path.name} is not a batch"
            )
            if not drop_refused:
                outcome.kept = len(files) - i
                advance(outcome.kept)
                return outcome
            Spool.remove(path)
            outcome.dropped += 1
            advance(1)
            continue
        Spool.remove(path)
        result = result if isinstance(result, dict) else {}
        outcome.points += int(result.get("points", 0))
        if result.get("duplicate"):
            outcome.duplicates += 1
        else:
            outcome.sent += 1
        advance(1)
    end = spool.load_end()
    if end is not None:  # the run ended while the server was away: record how, now
        runs.update(spool.run_id, status=end["status"], status_reason=end.get("reason"))
        spool.clear_end()
    return outcome
