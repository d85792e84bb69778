"""Batches the server could not take yet, kept on disk in order until it can.

One directory per run; one file per batch, named so sorting gives the logging order.
Files are written atomically, so a crash leaves whole batches or none.
"""

import contextlib
import os
import time
from pathlib import Path
from typing import Any

import orjson


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
