"""Replaying a spool (what `naiad runs sync` runs), against a stand-in for the runs API."""

from pathlib import Path
from typing import Any

import pytest

from naiad.core.errors import NotFound, ServerError, ServerUnreachable
from naiad.sdk.spool import Spool, replay, waiting


class FakeRuns:
    def __init__(self, fail: dict[str, Exception] | None = None) -> None:
        self.fail = fail or {}
        self.got: list[str] = []
        self.ended: dict[str, tuple[str, str | None]] = {}

    def log_batch(self, run_id: str, batch: dict[str, Any]) -> dict[str, Any]:
        if batch["batch_id"] in self.fail:
            raise self.fail[batch["batch_id"]]
        duplicate = batch["batch_id"] in self.got
        self.got.append(batch["batch_id"])
        return {"points": 0 if duplicate else 2, "duplicate": duplicate}

    def update(self, run_id: str, status: str, status_reason: str | None = None) -> None:
        self.ended[run_id] = (status, status_reason)


def spooled(root: Path, run_id: str, *ids: str) -> Spool:
    spool = Spool(root, run_id)
    for batch_id in ids:
        spool.write({"batch_id": batch_id})
    return spool


def test_sends_in_order_then_the_final_status(tmp_path: Path) -> None:
    spool = spooled(tmp_path, "r1", "a", "b", "a")
    spool.save_end("Failed", "OOM")
    runs, advanced = FakeRuns(), []
    outcome = replay(runs, tmp_path, advance=advanced.append)  # type: ignore[arg-type]
    assert runs.got == ["a", "b", "a"] and sum(advanced) == 3
    assert (outcome["r1"].sent, outcome["r1"].duplicates, outcome["r1"].points) == (2, 1, 4)
    assert runs.ended == {"r1": ("Failed", "OOM")}
    assert waiting(tmp_path) == {} and not spool.dir.exists()


def test_a_server_error_keeps_the_rest_in_order(tmp_path: Path) -> None:
    spool = spooled(tmp_path, "r1", "a", "b", "c")
    runs = FakeRuns({"b": ServerError("Try later.")})
    outcome = replay(runs, tmp_path, drop_refused=True)  # type: ignore[arg-type]
    assert (outcome["r1"].sent, outcome["r1"].kept, outcome["r1"].problem) == (1, 2, "Try later.")
    assert len(spool.pending()) == 2


def test_refused_batches_stay_unless_dropped(tmp_path: Path) -> None:
    spool = spooled(tmp_path, "gone", "a", "b")
    runs = FakeRuns({"a": NotFound("No run 'gone'."), "b": NotFound("No run 'gone'.")})
    kept = replay(runs, tmp_path)  # type: ignore[arg-type]
    assert kept["gone"].kept == 2 and len(spool.pending()) == 2
    dropped = replay(runs, tmp_path, drop_refused=True)  # type: ignore[arg-type]
    assert dropped["gone"].dropped == 2 and spool.pending() == []


def test_an_unreachable_server_stops_it_all(tmp_path: Path) -> None:
    spool = spooled(tmp_path, "r1", "a")
    with pytest.raises(ServerUnreachable):
        replay(FakeRuns({"a": ServerUnreachable("Cannot reach.")}), tmp_path)  # type: ignore[arg-type]
    assert len(spool.pending()) == 1
