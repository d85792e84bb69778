"""Logging on a full disk: the script never sees an error, one warning says what happens,
the points wait in memory, and what could be kept nowhere is counted and reported.

The disk is full where the operating system would say so: writing a spool file raises
ENOSPC after creating it (tests/e2e/test_full_disk.py does the same on a real tmpfs).
"""

import errno
import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from naiad.core.errors import ServerUnreachable
from naiad.sdk.client import Client
from naiad.sdk.pipeline import MetricPipeline
from naiad.sdk.run import ActiveRun
from naiad.sdk.spool import Spool
from naiad.testing.live import free_port


class Server:
    def __init__(self) -> None:
        self.up = False
        self.steps: list[int] = []
        self.lock = threading.Lock()

    def send(self, batch: dict[str, Any]) -> None:
        if not self.up:
            raise ServerUnreachable("Cannot reach the Naiad server.")
        with self.lock:
            self.steps += batch["metrics"]["loss"]["steps"]


class Disk:
    full = True


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> Disk:
    """Spool writes find the disk full, as ENOSPC from write(2) would, until it is not."""
    disk = Disk()
    original = Path.write_bytes

    def write_bytes(self: Path, data: bytes) -> int:
        if not disk.full or "spool" not in self.parts:
            return original(self, data)
        self.touch()  # the file is made, its data does not fit
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    return disk


def _disk_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "cannot save metrics" in r.getMessage()]


def test_points_wait_in_memory_and_arrive_in_order(
    tmp_path: Path, full_disk: Disk, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "naiad.sdk")
    server = Server()
    spool = Spool(tmp_path / "spool", "run1")
    p = MetricPipeline(server.send, spool, flush_interval=3600, max_backoff=0.05)
    for step in range(300):
        p.log({"loss": float(step)}, step)
        if step % 100 == 99:
            assert p.flush(timeout=0.1) is False  # no exception, however often it is asked
    assert p.held_points == 300 and p.lost_points == 0
    assert spool.pending() == [] and not list(spool.dir.glob("*.tmp"))  # no torn files
    warnings = _disk_warnings(caplog)
    assert len(warnings) == 1 and "No space left on device" in warnings[0]
    assert str(spool.dir) in warnings[0]

    server.up = True
    assert p.flush(timeout=5)
    assert server.steps == list(range(300))
    assert p.close(timeout=1) and p.lost_points == 0


def test_held_points_go_to_disk_in_order_once_it_has_room(tmp_path: Path, full_disk: Disk) -> None:
    server = Server()
    spool = Spool(tmp_path / "spool", "run1")
    p = MetricPipeline(server.send, spool, flush_interval=3600, max_backoff=0.05)
    for step in range(50):
        p.log({"loss": 1.0}, step)
    assert p.flush(timeout=0.05) is False and p.held_points == 50
    full_disk.full = False
    for step in range(50, 100):
        p.log({"loss": 1.0}, step)
    assert p.flush(timeout=0.05) is False  # the server is still away
    assert p.held_points == 0 and len(spool.pending()) == 2
    assert [Spool.read(f)["metrics"]["loss"]["steps"][0] for f in spool.pending()] == [0, 50]
    server.up = True
    assert p.close(timeout=5)
    assert server.steps == list(range(100)) and spool.pending() == []


def test_what_fits_nowhere_is_counted(tmp_path: Path, full_disk: Disk) -> None:
    server = Server()
    p = MetricPipeline(
        server.send, Spool(tmp_path / "spool", "r"), flush_interval=3600, max_held_points=50
    )
    for step in range(30):
        p.log({"loss": 1.0}, step)
    assert p.flush(timeout=0.05) is False  # 30 held
    for step in range(30, 60):
        p.log({"loss": 1.0}, step)
    assert p.flush(timeout=0.05) is False  # 30 more would pass 50: lost
    assert p.held_points == 30 and p.lost_points == 30
    assert p.close(timeout=0.05) is False
    assert p.lost_points == 60  # the disk is still full when the run ends


def test_a_run_reports_lost_points_at_its_end_and_never_raises(
    tmp_path: Path,
    full_disk: Disk,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "naiad.sdk")
    monkeypatch.setenv("NAIAD_HOME", str(tmp_path / "home"))
    client = Client(url=f"http://127.0.0.1:{free_port()}", token="t")  # nobody listens
    run = ActiveRun(client, "0" * 32, flush_interval=0.01, flush_timeout=0.2)
    run.log_metrics({"loss": 0.5, "acc": 0.9}, step=0)
    run.log_metric("loss", 0.4, step=1)
    assert run.flush(timeout=0.1) is False
    run.end()
    messages = [r.getMessage() for r in caplog.records]
    assert len(_disk_warnings(caplog)) == 1
    lost = [m for m in messages if "could not be stored" in m]
    assert len(lost) == 1 and lost[0].startswith("naiad: 3 metric points of run 0000")
    client.close()
