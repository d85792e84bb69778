"""The managed-process core's decisions, without starting a process: back-off, health,
failure sentences, drain, re-attach refusing a record whose pid is not its process."""

import os
import time
from pathlib import Path

from naiad.server.managed.process import Kind, ManagedProcess, Policy, find, first_start

KIND = Kind("worker", "some.module", record_file="worker.json", log_file="worker.log")
POLICY = Policy(start_timeout_s=5.0, stop_grace_s=2.0)


def test_backoff_doubles_to_its_ceiling() -> None:
    assert [POLICY.backoff(n) for n in (1, 2, 3, 10)] == [0.5, 1.0, 2.0, 30.0]


def test_a_death_before_answering_backs_off_and_says_why(tmp_path: Path) -> None:
    proc = ManagedProcess(root=tmp_path / "0", kind=KIND, pid=123, port=9)
    proc.root.mkdir()
    proc.log_path.write_text("--- starting on port 9 at now\nImportError: no module\n")
    proc.died(100.0, POLICY)
    assert proc.pid is None and proc.failed_starts == 1 and proc.retry_at == 100.5
    assert proc.failure == (
        f"Worker 0 exited before it answered /ping; the end of {proc.log_path}:\n"
        "ImportError: no module"
    )


def test_a_death_after_serving_restarts_at_once(tmp_path: Path) -> None:
    proc = ManagedProcess(root=tmp_path, kind=KIND, pid=123, port=9)
    proc.pinged(True, 1.0, POLICY)
    assert proc.healthy and proc.ever_healthy
    proc.died(50.0, POLICY)
    assert proc.retry_at == 50.0 and proc.failed_starts == 0 and proc.failure is None


def test_missed_pings_take_it_out_of_rotation(tmp_path: Path) -> None:
    proc = ManagedProcess(root=tmp_path, kind=KIND, pid=None, port=9)
    proc.pinged(True, 0.0, POLICY)
    for t in range(POLICY.ping_failures):
        assert proc.healthy
        proc.pinged(False, float(t), POLICY)
    assert not proc.healthy and proc.unhealthy_since == POLICY.ping_failures - 1


def test_a_gone_process_drains_at_once(tmp_path: Path) -> None:
    proc = ManagedProcess(root=tmp_path / "0", kind=KIND, pid=None, port=9)
    proc.retire(POLICY)
    assert proc.retire_at is not None and proc.drain(0.0, POLICY)
    proc.root.mkdir()
    proc.remove(parents=1)
    assert not tmp_path.exists()


def test_a_record_whose_pid_is_another_process_is_not_reattached(tmp_path: Path) -> None:
    (tmp_path / KIND.record_file).write_text(f'{{"pid": {os.getpid()}, "port": 9, "restarts": 2}}')
    proc = ManagedProcess(root=tmp_path, kind=KIND)
    assert find(tmp_path, KIND) is None
    assert not proc.reattach()
    assert proc.launched and proc.restarts == 2 and proc.pid is None


def test_the_log_head_and_the_first_start_it_records(tmp_path: Path) -> None:
    proc = ManagedProcess(root=tmp_path, kind=KIND, pid=None, port=9)
    assert proc.log_head(100) == ""  # no log yet
    proc.log_path.write_text(
        "--- starting on port 9 at 2026-12-06T11:40:00\nloaded\n"
        "--- starting on port 10 at 2026-12-06T11:41:00\n"
    )
    text = proc.log_head(1000)
    assert text.splitlines()[1] == "loaded" and proc.log_head(3) == "---"
    assert first_start(text) == time.mktime((2026, 12, 6, 11, 40, 0, 0, 0, -1))
    assert first_start("loaded\n") is None
    assert first_start("--- starting on port 9 at now\n") is None
