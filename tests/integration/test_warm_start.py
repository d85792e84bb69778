"""Warm starts: a job handed to the standby runs forked from an interpreter that already
imported torch, and otherwise behaves exactly as a cold start (directory, variables,
exit codes, logs, stop)."""

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from naiad.executors.base import LaunchSpec
from naiad.executors.local import LocalExecutor
from naiad.store.artifacts import open_artifact_store
from naiad.testing.jobs import launch_spec, wait_terminal

REPORT = """
import json, os, sys
warm = "torch" in sys.modules  # before this script imported anything
report = {"warm": warm, "argv": sys.argv, "cwd": os.getcwd(), "rank": os.environ["RANK"],
          "model_dir": os.environ["SM_MODEL_DIR"], "path0": sys.path[0], "name": __name__}
with open(os.path.join(os.environ["SM_MODEL_DIR"], "report.json"), "w") as f:
    json.dump(report, f)
print("reported", flush=True)
"""


@pytest.fixture
def executor() -> Iterator[LocalExecutor]:
    executor = LocalExecutor(warm=True)
    executor.open()
    assert executor.wait_warm(timeout=60), "the standby never finished its imports"
    yield executor
    executor.close()


def make(tmp_path: Path, name: str, script: str, **fields: object) -> LaunchSpec:
    store = open_artifact_store((tmp_path / "artifacts").as_uri())
    return launch_spec(tmp_path, store, {"train.py": script}, name, **fields)


def test_a_warm_job_runs_like_a_cold_one(executor: LocalExecutor, tmp_path: Path) -> None:
    spec = make(tmp_path, "warm", REPORT, hyperparameters={"lr": 0.1})
    executor.submit(spec)
    state = wait_terminal(executor, spec, timeout=60)
    assert state.phase == "succeeded", (spec.work_dir / "logs" / "job.log").read_text()
    report = json.loads((spec.work_dir / "model" / "report.json").read_text())
    assert report["warm"] is True
    assert report["name"] == "__main__"
    assert report["cwd"] == str((spec.work_dir / "code").resolve())  # as SageMaker's code dir
    assert report["path0"] == str((spec.work_dir / "code").resolve())
    assert report["argv"][0].endswith("code/train.py") and "--lr" in report["argv"]
    assert report["rank"] == "0"
    assert "reported" in (spec.work_dir / "logs" / "job.log").read_text()


def test_jobs_started_at_once_all_start_warm(executor: LocalExecutor, tmp_path: Path) -> None:
    """The standby forks a supervisor per job and stays: no job waits for a new one."""
    specs = [make(tmp_path, f"burst-{i}", REPORT) for i in range(3)]
    for spec in specs:
        executor.submit(spec)
    for spec in specs:
        assert wait_terminal(executor, spec, timeout=60).phase == "succeeded"
        assert json.loads((spec.work_dir / "model" / "report.json").read_text())["warm"] is True
    assert executor.warm_ready()  # still there for the next one


def test_a_forked_job_outlives_the_standby(executor: LocalExecutor, tmp_path: Path) -> None:
    """Closing the executor (the server stopping) ends the standby, not the jobs it forked."""
    script = "import time\nprint('up', flush=True)\ntime.sleep(1.5)\nprint('done', flush=True)\n"
    spec = make(tmp_path, "outlives", script)
    executor.submit(spec)
    log = spec.work_dir / "logs" / "job.log"
    deadline = time.monotonic() + 30
    while not (log.exists() and "up" in log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    executor.close()
    later = LocalExecutor()  # the next server's, re-attaching by the job's directory
    state = wait_terminal(later, spec, timeout=30)
    assert state.phase == "succeeded", state.reason
    assert "done" in log.read_text()


def test_a_warm_script_opens_the_files_beside_it(executor: LocalExecutor, tmp_path: Path) -> None:
    script = """
import os, sys
assert "torch" in sys.modules, "not forked warm"
with open(os.path.join(os.environ["SM_MODEL_DIR"], "seen.txt"), "w") as f:
    f.write(open("config.txt").read())
"""
    store = open_artifact_store((tmp_path / "artifacts").as_uri())
    files = {"train.py": script, "config.txt": "lr=0.5"}
    spec = launch_spec(tmp_path, store, files, "beside")
    executor.submit(spec)
    state = wait_terminal(executor, spec, timeout=60)
    assert state.phase == "succeeded", state.reason
    assert (spec.work_dir / "model" / "seen.txt").read_text() == "lr=0.5"


def test_exit_codes_failures_and_stops_match_cold_starts(
    executor: LocalExecutor, tmp_path: Path
) -> None:
    failing = make(tmp_path, "exit3", "import sys\nprint('bad input')\nsys.exit(3)\n")
    executor.submit(failing)
    state = wait_terminal(executor, failing, timeout=60)
    assert (state.phase, state.exit_code) == ("failed", 3)
    assert state.reason is not None and "bad input" in state.reason

    assert executor.wait_warm(timeout=60)
    raising = make(tmp_path, "raises", "raise ValueError('no such column')\n")
    executor.submit(raising)
    state = wait_terminal(executor, raising, timeout=60)
    assert state.phase == "failed" and "ValueError: no such column" in (state.reason or "")

    assert executor.wait_warm(timeout=60)
    slow = make(tmp_path, "slow", "import time\nprint('up', flush=True)\ntime.sleep(60)\n")
    executor.submit(slow)
    log = slow.work_dir / "logs" / "job.log"
    deadline = time.monotonic() + 30
    while not (log.exists() and "up" in log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    executor.stop(slow, grace_s=1.0)
    assert wait_terminal(executor, slow, timeout=30).phase == "stopped"


def test_torchrun_jobs_start_cold(executor: LocalExecutor, tmp_path: Path) -> None:
    spec = make(tmp_path, "ddp", REPORT, processes_per_node=2)
    executor.submit(spec)
    assert wait_terminal(executor, spec, timeout=90).phase == "succeeded"
    report = json.loads((spec.work_dir / "model" / "report.json").read_text())
    assert report["warm"] is False
