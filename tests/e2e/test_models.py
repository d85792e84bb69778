"""The registry end to end: the digits example trains as a 2-process job, its model is
registered with lineage, aliased, evaluated and quantized, through the CLI and the SDK."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import naiad
from naiad.testing.live import LiveServer

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "digits"


def cli(live: LiveServer, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **live.environ(), "COLUMNS": "200"}
    result = subprocess.run(
        [sys.executable, "-m", "naiad.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    sys.path.insert(0, str(EXAMPLE))
    try:
        from prepare import prepare  # examples/digits/prepare.py
    finally:
        sys.path.remove(str(EXAMPLE))
    return prepare(tmp_path_factory.mktemp("digits"))


def test_train_register_evaluate_quantize(client_env: LiveServer, data: dict[str, Path]) -> None:
    client = naiad.Client()
    job = client.training_jobs.create(
        name="digits-1",
        entrypoint="train.py",
        source_dir=EXAMPLE,
        hyperparameters={"epochs": 10, "lr": 0.003},
        inputs={"train": str(data["train"]), "validation": str(data["validation"])},
        processes_per_node=2,
        experiment="digits",
    )
    ended = job.wait(timeout=240)
    assert ended.status == "Completed", "".join(job.logs())

    out = cli(client_env, "models", "register", "digits", "--job", "digits-1", "--json")
    version = json.loads(out.stdout)
    assert version["version"] == 1
    assert version["signature"]["inputs"] == {"shape": [-1, 1, 8, 8], "dtype": "float32"}
    assert version["classes"] == [str(d) for d in range(10)]
    lineage = version["lineage"]
    assert lineage["job"] == "digits-1" and lineage["run_id"] == ended.run_id
    assert lineage["hyperparameters"] == {"epochs": 10, "lr": 0.003}
    assert lineage["inputs"]["train"] == data["train"].as_uri()
    assert lineage["metrics"]["val/accuracy"] > 0.9

    cli(client_env, "models", "alias", "digits", "production", "1")
    evaluation = client.models.evaluate("digits@production", str(data["test"]))
    assert evaluation.status == "Completed"
    assert evaluation.metrics["accuracy"] >= 0.95
    matrix = evaluation.confusion_matrix
    assert matrix is not None and len(matrix) == 10
    test_size = len(np.load(data["test"] / "digits.npz")["y"])
    assert sum(map(sum, matrix)) == test_size  # every test image counted once
    assert evaluation.per_class is not None and set(evaluation.per_class) == set("0123456789")
    assert all(0 <= s["f1"] <= 1 for s in evaluation.per_class.values())

    out = cli(client_env, "models", "quantize", "digits:1", "--json")
    quantized = json.loads(out.stdout)
    assert quantized["version"] == 2 and quantized["quantization"] == "dynamic-int8"
    assert quantized["lineage"]["derived_from"] == "digits:1"
    assert quantized["size_bytes"] < version["size_bytes"] / 2

    shown = json.loads(cli(client_env, "models", "show", "digits", "--json").stdout)
    by_version = {e["version"]: e["metrics"]["accuracy"] for e in shown["evaluations"]}
    assert set(by_version) == {1, 2}  # the int8 copy was evaluated on the same data
    assert abs(by_version[2] - by_version[1]) < 0.03
    table = cli(client_env, "models", "show", "digits", "--matrix").stdout
    assert "dynamic-int8" in table and "confusion matrix of digits:2" in table


def test_registering_an_unfinished_or_unknown_job_is_refused(client_env: LiveServer) -> None:
    result = cli(client_env, "models", "register", "digits", "--job", "no-such-job", check=False)
    assert result.returncode == 1
    assert "No training job named 'no-such-job'" in result.stderr
    result = cli(client_env, "models", "register", "x", "--path", "/nonexistent", check=False)
    assert result.returncode == 1 and "does not exist" in result.stderr
