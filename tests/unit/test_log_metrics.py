"""Metric definitions read from a job's log: whole lines, rank 0, and picking up after a restart."""

import json
from pathlib import Path

from naiad.executors.base import LaunchSpec
from naiad.executors.supervisor.log_metrics import LogMetrics
from naiad.executors.supervisor.workdir import WorkDir

RUN = "r" * 32


def follower(root: Path, procs: int = 1) -> LogMetrics:
    spec = LaunchSpec(
        job_name="j",
        run_id=RUN,
        work_dir=root,
        source_uri="",
        entrypoint="train.py",
        processes_per_node=procs,
        metric_definitions=[{"name": "loss", "regex": r"loss: ([0-9.eE+-]+|nan)"}],
    )
    return LogMetrics(spec, WorkDir(root), lambda _: None)


def append(root: Path, text: str) -> None:
    log = WorkDir(root).job_log
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as f:
        f.write(text)


def batches(root: Path) -> list[dict]:
    spool = WorkDir(root).naiad_home / "spool" / RUN
    return [json.loads(p.read_text()) for p in sorted(spool.glob("*.json"))]


def test_whole_lines_become_points_and_a_restart_goes_on(tmp_path: Path) -> None:
    append(tmp_path, "[naiad] attempt 0: starting\nloss: 0.5\nnothing\nloss: 0.25\nloss: 0.1")
    assert follower(tmp_path).read() == 2  # the last line is still being written
    (first,) = batches(tmp_path)
    assert first["batch_id"] == "log-0"
    assert first["metrics"]["loss"]["steps"] == [0, 1]
    assert first["metrics"]["loss"]["values"] == [0.5, 0.25]
    append(tmp_path, "25\nloss: nan\n")
    again = follower(tmp_path)  # a new supervisor: offset and steps from log_metrics.json
    assert again.read() == 2
    second = batches(tmp_path)[1]["metrics"]["loss"]
    assert second["steps"] == [2, 3] and second["values"] == [0.125, "NaN"]
    append(tmp_path, "loss: 7")
    assert again.read() == 0 and again.read(final=True) == 1  # the job ended: all of it
    last = batches(tmp_path)[2]["metrics"]["loss"]
    assert last["steps"] == [4] and last["values"] == [7.0]


def test_under_torchrun_only_rank_zero_counts(tmp_path: Path) -> None:
    append(tmp_path, "[rank1] loss: 2\n[rank0] loss: 1\nloss: 3\n[rank10] loss: 4\n")
    assert follower(tmp_path, procs=2).read() == 1
    (batch,) = batches(tmp_path)
    assert batch["metrics"]["loss"]["values"] == [1.0]


def test_a_group_that_is_not_a_number_is_skipped(tmp_path: Path) -> None:
    append(tmp_path, "loss: e\nloss: 1e-3\n")
    assert follower(tmp_path).read() == 1
    assert batches(tmp_path)[0]["metrics"]["loss"]["values"] == [0.001]
