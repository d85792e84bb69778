"""The metric pipeline against a fake server: never blocks, batches, spools, replays in order."""

import math
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from naiad.core.errors import Conflict, InvalidInput, PayloadTooLarge, ServerUnreachable
from naiad.sdk.pipeline import MetricPipeline
from naiad.sdk.spool import Spool


class FakeServer:
    """Stores batches by id, as the real one does; can be switched off."""

    def __init__(self) -> None:
        self.up = True
        self.batches: dict[str, dict[str, Any]] = {}
        self.order: list[str] = []
        self.lock = threading.Lock()

    def send(self, batch: dict[str, Any]) -> None:
        if not self.up:
            raise ServerUnreachable("down")
        with self.lock:
            if batch["batch_id"] not in self.batches:
                self.batches[batch["batch_id"]] = batch
                self.order.append(batch["batch_id"])

    def points(self, key: str) -> list[tuple[int, Any]]:
        out = []
        for batch_id in self.order:
            columns = self.batches[batch_id]["metrics"].get(key)
            if columns:
                out.extend(zip(columns["steps"], columns["values"], strict=True))
        return out


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


def pipeline(server: FakeServer, tmp_path: Path, **kw: Any) -> MetricPipeline:
    return MetricPipeline(server.send, Spool(tmp_path, "run1"), flush_interval=0.05, **kw)


def test_points_arrive_in_order_once(server: FakeServer, tmp_path: Path) -> None:
    p = pipeline(server, tmp_path)
    for step in range(10_000):
        p.log({"loss": 1.0 / (step + 1), "acc": step / 10_000}, step=step)
    assert p.close(timeout=10)
    loss = server.points("loss")
    assert [s for s, _ in loss] == list(range(10_000))
    assert len(server.points("acc")) == 10_000


def test_log_is_fast(server: FakeServer, tmp_path: Path) -> None:
    p = pipeline(server, tmp_path)
    n = 100_000
    start = time.perf_counter()
    for step in range(n):
        p.log({"loss": 0.5}, step)
    per_call = (time.perf_counter() - start) / n
    p.close()
    assert per_call < 50e-6  # generous bound for a loaded CI machine; benchmarks measure ~1 us


def test_spools_while_down_and_replays_in_order(server: FakeServer, tmp_path: Path) -> None:
    p = pipeline(server, tmp_path, max_backoff=0.1)
    server.up = False
    for step in range(100):
        p.log({"loss": float(step)}, step)
        if step % 10 == 0:
            time.sleep(0.06)  # let several batches be cut and spooled
    time.sleep(0.2)
    assert len(p.spool.pending()) >= 2
    assert server.points("loss") == []
    server.up = True
    for step in range(100, 120):
        p.log({"loss": float(step)}, step)
    assert p.flush(timeout=10)
    assert [s for s, _ in server.points("loss")] == list(range(120))
    assert p.spool.pending() == []
    p.close()


def test_close_while_down_leaves_batches_on_disk(server: FakeServer, tmp_path: Path) -> None:
    p = pipeline(server, tmp_path)
    server.up = False
    p.log({"loss": 1.0}, 0)
    assert p.close(timeout=0.3) is False
    files = p.spool.pending()
    assert files and Spool.read(files[0])["metrics"]["loss"]["values"] == [1.0]


def test_nonfinite_values_are_encoded(server: FakeServer, tmp_path: Path) -> None:
    p = pipeline(server, tmp_path)
    p.log({"loss": math.nan}, 0)
    p.log({"loss": math.inf}, 1)
    p.log({"loss": -math.inf}, 2)
    p.close()
    assert [v for _, v in server.points("loss")] == ["NaN", "Infinity", "-Infinity"]


def test_bad_key_or_value_fails_at_the_call(server: FakeServer, tmp_path: Path) -> None:
    p = pipeline(server, tmp_path)
    with pytest.raises(InvalidInput, match="Metric key"):
        p.log({"../etc": 1.0})
    with pytest.raises(InvalidInput, match="must be a number"):
        p.log({"loss": "high"})  # type: ignore[dict-item]
    p.close()


def test_refused_batch_is_dropped_not_retried_forever(tmp_path: Path) -> None:
    def refuse(batch: dict[str, Any]) -> None:
        raise Conflict("run ended")

    p = MetricPipeline(refuse, Spool(tmp_path, "r"), flush_interval=0.05)
    p.log({"loss": 1.0}, 0)
    assert p.close(timeout=2)
    assert p.dropped_points == 1 and p.spool.pending() == []


def test_auto_step_counts_calls(server: FakeServer, tmp_path: Path) -> None:
    p = pipeline(server, tmp_path)
    p.log({"a": 1.0})
    p.log({"a": 2.0})
    p.log({"a": 3.0}, step=10)
    p.log({"a": 4.0})
    p.close()
    assert [s for s, _ in server.points("a")] == [0, 1, 10, 11]


def test_batches_never_exceed_the_limit(server: FakeServer, tmp_path: Path) -> None:
    """A backlog (a slow server) is cut into batches the server accepts, in order."""
    p = MetricPipeline(server.send, Spool(tmp_path, "r"), flush_interval=3600, max_batch_points=7)
    for step in range(20):
        p.log({"a": float(step), "b": -float(step)}, step)
    assert p.close(timeout=5)
    sizes = [sum(len(c["values"]) for c in b["metrics"].values()) for b in server.batches.values()]
    assert max(sizes) <= 7 and sum(sizes) == 40
    assert [s for s, _ in server.points("a")] == list(range(20))
    assert [s for s, _ in server.points("b")] == list(range(20))


def test_a_server_with_a_lower_limit_gets_smaller_batches(tmp_path: Path) -> None:
    stored: list[int] = []

    def strict(batch: dict[str, Any]) -> None:
        n = sum(len(c["values"]) for c in batch["metrics"].values())
        if n > 5:
            raise PayloadTooLarge("at most 5 points")
        stored.extend(batch["metrics"]["a"]["steps"])

    p = MetricPipeline(strict, Spool(tmp_path, "r"), flush_interval=3600, max_batch_points=100)
    for step in range(40):
        p.log({"a": 1.0}, step)
    assert p.close(timeout=5)
    assert stored == list(range(40)) and p.dropped_points == 0


def test_first_point_is_sent_without_waiting_for_the_interval(
    server: FakeServer, tmp_path: Path
) -> None:
    p = MetricPipeline(server.send, Spool(tmp_path, "r"), flush_interval=3600)
    p.log({"loss": 1.0}, 0)
    deadline = time.monotonic() + 5
    while not server.points("loss") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.points("loss") == [(0, 1.0)]
    p.close()


def test_a_resumed_job_drops_steps_the_run_already_has(server: FakeServer, tmp_path: Path) -> None:
    p = pipeline(server, tmp_path)
    p.floor = {"loss": 5}  # the run holds loss up to step 5; "lr" it has never seen
    for step in range(3, 9):
        p.log({"loss": float(step), "lr": 0.1}, step=step)
    assert p.close(timeout=10)
    assert [s for s, _ in server.points("loss")] == [6, 7, 8]
    assert [s for s, _ in server.points("lr")] == [3, 4, 5, 6, 7, 8]


def test_persist_puts_every_point_on_the_server_or_the_disk(
    server: FakeServer, tmp_path: Path
) -> None:
    p = pipeline(server, tmp_path, max_batch_points=10**6)
    p.flush_interval = 3600.0  # nothing goes out on its own: only persist sends
    p.log({"loss": 1.0}, step=0)
    p.persist()
    server.up = False
    p.log({"loss": 2.0}, step=1)
    p.persist()  # the server is away: the point is spooled, and a crash keeps it
    assert [s for s, _ in server.points("loss")] == [0]
    assert len(p.spool.pending()) == 1
