"""Scripts written for PyTorch Lightning and for Hugging Face's Trainer, run as 2-process
jobs unchanged but for Naiad's logger or callback: each framework finds the job's torchrun
environment itself (one world of two), and the job's run gets the hyperparameters as
params, each logged value as a metric once per step, and the checkpoints as artifacts."""

import importlib.util
from pathlib import Path

import pytest

import naiad
from naiad.testing.live import LiveServer
from tests.conftest import need

pytestmark = pytest.mark.slow
SOURCE = Path(__file__).parent / "jobs" / "frameworks"


def run_job(live: LiveServer, name: str, script: str) -> tuple[naiad.Client, str, str]:
    client = naiad.Client(url=live.url, token=live.token)
    job = client.training_jobs.create(
        name=name, entrypoint=script, source_dir=SOURCE, processes_per_node=2
    )
    done = job.wait(timeout=300)
    log = "".join(job.logs())
    assert done.status == "Completed", f"{done.status_reason}\n{log[-3000:]}"
    return client, done.run_id, log


def steps_once(client: naiad.Client, run_id: str, key: str) -> list[int]:
    steps = client.runs.metric_history(run_id, key).steps.tolist()
    assert steps == sorted(set(steps)), f"{key}: {steps}"  # rank 0 alone logs: no repeats
    return steps


def test_a_lightning_script_runs_as_a_ddp_job_with_its_run_recorded(live: LiveServer) -> None:
    need(importlib.util.find_spec("lightning") is not None, "lightning (naiad[lightning])")
    client, run_id, log = run_job(live, "lightning-ddp", "lightning_job.py")
    # 512 rows over 2 ranks, batch 32: 8 steps an epoch, 3 epochs
    assert "lightning world size 2, steps 24" in log
    run = client.runs.get(run_id)
    assert run.params["lr"] == 0.05 and run.params["hidden"] == 16
    assert steps_once(client, run_id, "train_loss") == list(range(1, 24, 2))
    assert len(steps_once(client, run_id, "val_loss")) == 3  # once an epoch
    names = {a.path for a in client.runs.list_artifacts(run_id, recursive=True)}
    assert "checkpoints/last.ckpt" in names, names


def test_a_transformers_trainer_runs_as_a_ddp_job_with_its_run_recorded(
    live: LiveServer,
) -> None:
    need(importlib.util.find_spec("transformers") is not None, "transformers (naiad[transformers])")
    client, run_id, log = run_job(live, "transformers-ddp", "transformers_job.py")
    # 512 rows over 2 ranks, 16 a device: 16 steps an epoch, 2 epochs
    assert "transformers world size 2, steps 32" in log
    run = client.runs.get(run_id)
    assert run.params["learning_rate"] == 0.01 and run.params["model.hidden"] == 16
    assert steps_once(client, run_id, "loss") == list(range(2, 33, 2))
    assert steps_once(client, run_id, "eval_loss") == [16, 32]
    names = {a.path for a in client.runs.list_artifacts(run_id, recursive=True)}
    assert any(n.startswith("checkpoints/checkpoint-30/") for n in names), names
