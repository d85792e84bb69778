"""The main job end to end, as `make quickstart` runs it, on a temporary Naiad home:
the embedded server is started for it, and a second run reuses what the first made."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import naiad
from naiad.testing.live import free_port


def quickstart(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "naiad.quickstart", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result.stdout


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    home = tmp_path / "home"
    port = str(free_port())
    for key in ("NAIAD_URL", "NAIAD_TOKEN", "NAIAD_RUN_ID"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("NAIAD_HOME", str(home))
    monkeypatch.setenv("NAIAD_PORT", port)
    yield home
    server = home / "server.json"
    if not server.exists():
        return
    with naiad.Client() as client:  # replicas outlive the server by design: end them first
        for endpoint in client.endpoints.list():
            client.endpoints.delete(endpoint.name, wait=True)
    pid = json.loads(server.read_text())["pid"]
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while server.exists() and time.monotonic() < deadline:
        time.sleep(0.1)


def test_quickstart_trains_evaluates_deploys_and_reruns(home: Path) -> None:
    env = {**os.environ, "COLUMNS": "120"}
    out = quickstart(env)
    for expected in (
        "2-process DDP job",
        "confusion matrix of digits:1",
        "digits@production -> digits:1",
        "is InService",
        "one image per request",
        f"Console:  http://127.0.0.1:{os.environ['NAIAD_PORT']}/?token=",
    ):
        assert expected in out, out
    client = naiad.Client()
    job = client.training_jobs.get("digits-quickstart-1").job
    assert job.processes_per_node == 2 and job.status == "Completed"
    [evaluation] = client.evaluations.list("digits:1")
    assert evaluation.metrics["accuracy"] >= 0.97
    assert client.models.get("digits@production").version == 1
    prediction = client.endpoints.get("digits").predict(np.zeros((2, 1, 8, 8), np.float32))
    assert prediction.shape == (2, 10)

    again = quickstart(env)
    assert "reusing job digits-quickstart-1" in again
    assert [v.version for v in client.models.versions("digits")] == [1]  # nothing duplicated
    assert len(client.training_jobs.list()) == 2  # the training job and one evaluation
