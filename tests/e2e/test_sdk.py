"""The SDK against a live server: the README's tracking example, artifacts, export."""

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import naiad
from naiad.core.errors import NotFound
from naiad.testing.live import LiveServer


def test_client_finds_local_server_and_token(client_env: LiveServer) -> None:
    client = naiad.Client()  # no arguments: server.json and admin_token under NAIAD_HOME
    assert client.url == client_env.url
    assert client.health()["status"] == "ok"
    assert isinstance(client.experiments.list(), list)


def test_tracking_round_trip(client_env: LiveServer, tmp_path: Path) -> None:
    with naiad.start_run(experiment="digits", params={"lr": 1e-3, "epochs": 20}) as run:
        for step in range(10_000):
            run.log_metrics({"loss": 1 / (step + 1), "acc": step / 10_000}, step=step)
        run.log_metric("loss_nan", math.nan, step=0)
        picture = tmp_path / "confusion.txt"
        picture.write_text("0 1\n1 0\n")
        run.log_artifact(picture)
    client = naiad.Client()
    stored = client.runs.get(run.id)
    assert stored.status == "Completed"
    assert stored.params == {"lr": 1e-3, "epochs": 20}
    whole = client.runs.metric_history(run.id, "loss")
    assert len(whole) == 10_000 and whole.steps[-1] == 9_999
    assert whole.values[0] == 1.0
    small = client.runs.metric_history(run.id, "loss", max_points=100)
    assert small.downsampled and len(small) == 100 and small.max is not None
    assert small.max.max() == 1.0
    assert math.isnan(client.runs.metric_history(run.id, "loss_nan").values[0])
    best = client.runs.list(experiment="digits", order_by="metrics.acc DESC")
    assert best[0].id == run.id
    assert [a.path for a in client.runs.list_artifacts(run.id)] == ["confusion.txt"]
    out = client.runs.download_artifact(run.id, "confusion.txt", tmp_path / "dl")
    assert out.read_text() == "0 1\n1 0\n"


def test_failed_script_marks_run_failed(client_env: LiveServer) -> None:
    with pytest.raises(ZeroDivisionError), naiad.start_run(experiment="digits") as run:
        run.log_metrics({"loss": 1.0}, step=0)
        _ = 1 / 0
    stored = naiad.Client().runs.get(run.id)
    assert stored.status == "Failed"
    assert "ZeroDivisionError" in (stored.status_reason or "")
    assert stored.metrics["loss"].value == 1.0


def test_script_without_end_is_closed_at_exit(client_env: LiveServer) -> None:
    code = (
        "import naiad\n"
        "run = naiad.start_run(experiment='exit')\n"
        "for i in range(1000): run.log_metrics({'x': i}, step=i)\n"
        "print(run.id)\n"
    )
    env = {**os.environ, "NAIAD_HOME": str(client_env.home)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    run = naiad.Client().runs.get(out.stdout.strip())
    assert run.status == "Completed" and run.metrics["x"].count == 1000


def test_errors_are_sentences(client_env: LiveServer) -> None:
    client = naiad.Client()
    with pytest.raises(NotFound, match="naiad runs ls"):
        client.runs.get("0" * 32)
