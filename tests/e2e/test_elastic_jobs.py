"""An elastic job on the local executor (``nodes="1:2"``): it grows to two hosts, loses
one (its torchrun agent and workers SIGKILLed, as a lost machine takes them), carries on
with one, takes the host back, and ends with the optimiser steps it planned, each step's
metrics logged once, and its resizes recorded on the job with why and at which step."""

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

import naiad
from naiad.core.home import HomeLayout
from naiad.executors.supervisor.workdir import WorkDir, read_json
from naiad.schemas.jobs import TrainingJob
from naiad.sdk.jobs import JobHandle
from naiad.testing.live import LiveServer

pytestmark = pytest.mark.slow
SOURCE = Path(__file__).parent / "jobs"
STEPS = 300


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # a lost host comes back in 15 s, not 30: well after its peers re-formed without it
    # (about 7 s: 3 s to see it dead, 3 s for more to join, the workers' start)
    env = {"NAIAD_ELASTIC_REJOIN_S": "15"}
    server = LiveServer(home=tmp_path_factory.mktemp("elastic") / "home", env=env)
    server.start(timeout=60)
    try:
        yield server
    finally:
        server.stop()


def wait_for_event(job: JobHandle, what: str, timeout: float = 120.0) -> TrainingJob:
    """The job once an event's text (``"1 -> 2 ..."``) contains ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = job.refresh()
        texts = [f"{e.from_workers} -> {e.to_workers} {e.reason}" for e in now.events]
        if any(what in t for t in texts):
            return now
        assert now.status in ("Pending", "Starting", "Running"), (
            f"{now.status}: {now.status_reason}\n{''.join(job.logs())[-3000:]}"
        )
        time.sleep(0.3)
    raise AssertionError(f"no event {what!r}: {texts}\n{''.join(job.logs())[-3000:]}")


def wait_for_steps(client: naiad.Client, job: JobHandle, steps: int) -> None:
    deadline = time.monotonic() + 120
    while (summary := client.runs.get(job.job.run_id).metrics.get("loss")) is None or (
        summary.step < steps
    ):
        assert time.monotonic() < deadline, "".join(job.logs())[-3000:]
        time.sleep(0.3)


def kill_host(home: Path, job: str, host: str) -> None:
    """SIGKILL a host's agent and every worker under it at once, as a lost machine."""
    state = read_json(WorkDir(HomeLayout(home).jobs / job).state_file) or {}
    agent = psutil.Process(state["hosts"][host])
    for p in [*agent.children(recursive=True), agent]:
        os.kill(p.pid, signal.SIGKILL)


def test_an_elastic_job_loses_a_host_carries_on_and_takes_it_back(live: LiveServer) -> None:
    client = naiad.Client(url=live.url, token=live.token)
    job = client.training_jobs.create(
        name="elastic",
        entrypoint="elastic.py",
        source_dir=SOURCE,
        nodes="1:2",
        hyperparameters={"steps": STEPS, "step_s": 0.1, "checkpoint_every": 5},
    )
    assert (job.job.nodes, job.job.max_nodes) == (1, 2)
    wait_for_event(job, "-> 2")  # it grew into the second slot the executor had free
    wait_for_steps(client, job, 30)  # past a few checkpoints
    kill_host(live.home, "elastic", "algo-2")
    wait_for_event(job, "2 -> 1 algo-2 was lost (killed by SIGKILL")
    wait_for_event(job, "1 -> 2 algo-2 joined again")
    done = job.wait(timeout=300)
    assert done.status == "Completed", f"{done.status_reason}\n{''.join(job.logs())[-3000:]}"

    # every planned step ran exactly once as far as the run can tell: 1..STEPS, no repeats
    loss = client.runs.metric_history(done.run_id, "loss")
    assert loss.steps.tolist() == list(range(1, STEPS + 1))
    workers = client.runs.metric_history(done.run_id, "workers")
    sizes = [int(v) for v in workers.values.tolist()]
    phases = [s for i, s in enumerate(sizes) if i == 0 or s != sizes[i - 1]]
    assert phases[-3:] == [2, 1, 2], phases

    # the resizes, in order, each with the step its world resumed from
    events = done.events
    assert [(e.from_workers, e.to_workers) for e in events][-2:] == [(2, 1), (1, 2)]
    assert events[0].from_workers == 0 and events[0].reason == "started"
    resumed = [e.step for e in events]
    assert all(isinstance(s, int) for s in resumed) and resumed == sorted(resumed), resumed
    assert 0 < resumed[-2] <= resumed[-1] < STEPS

    # the model's own count: the last world ended on the planned step, with the same
    # global batch it started with (16 a worker with two, 32 with one)
    with tarfile.open(live.home / "artifacts/jobs/elastic/output/model.tar.gz") as tar:
        member = tar.extractfile("result.json")
        assert member is not None
        result = json.loads(member.read())
    assert result == {"steps": STEPS, "workers": 2, "batch": 32}

    # the CLI shows the range and the resizes
    env = {**live.environ(), "COLUMNS": "200"}
    shown = subprocess.run(
        [sys.executable, "-m", "naiad.cli.main", "jobs", "show", "elastic"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "1:2 node(s) x 1 process(es)" in shown
    assert "resizes" in shown and "2 -> 1" in shown and "algo-2 joined again" in shown
