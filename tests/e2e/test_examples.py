"""The SageMaker-style and tabular examples run as jobs, as their docstrings say."""

import json
import tarfile
from pathlib import Path

import pytest

import naiad
from naiad.testing.live import LiveServer
from tests.conftest import EXAMPLES, example_module


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return example_module("tabular", "make_data").make(tmp_path_factory.mktemp("tabular"))


def test_sagemaker_script_trains_and_leaves_its_model(
    client_env: LiveServer, tables: dict[str, Path]
) -> None:
    client = naiad.Client()
    job = client.training_jobs.create(
        name="sm-example",
        entrypoint="train.py",
        source_dir=EXAMPLES / "sagemaker-script",
        hyperparameters={"epochs": 20, "lr": 0.05},
        inputs={"train": str(tables["train"])},
    )
    ended = job.wait(timeout=120)
    assert ended.status == "Completed", "".join(job.logs())
    assert "epoch=19" in "".join(job.logs())
    model = client_env.home / "artifacts" / "jobs" / "sm-example" / "output" / "model.tar.gz"
    with tarfile.open(model) as tar:
        assert tar.getnames() == ["model.pth"]


def test_sagemaker_script_failure_file_becomes_the_reason(
    client_env: LiveServer, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    client = naiad.Client()
    job = client.training_jobs.create(
        name="sm-example-empty",
        entrypoint="train.py",
        source_dir=EXAMPLES / "sagemaker-script",
        inputs={"train": str(empty)},
    )
    ended = job.wait(timeout=120)
    assert ended.status == "Failed"
    assert ended.status_reason is not None and "no CSV rows" in ended.status_reason


def test_tabular_trains_registers_and_evaluates_on_csv(
    client_env: LiveServer, tables: dict[str, Path]
) -> None:
    client = naiad.Client()
    job = client.training_jobs.create(
        name="tabular-1",
        entrypoint="train.py",
        source_dir=EXAMPLES / "tabular",
        hyperparameters={"epochs": 25},
        inputs={"train": str(tables["train"]), "validation": str(tables["validation"])},
        experiment="tabular",
    )
    ended = job.wait(timeout=180)
    assert ended.status == "Completed", "".join(job.logs())
    run = client.runs.get(ended.run_id)
    assert run.metrics["val/accuracy"].value > 0.8
    assert run.metrics["epoch"].count == 25
    version = client.models.register("tabular", job="tabular-1")
    assert version.signature.inputs.shape == [-1, 20]
    evaluation = client.models.evaluate("tabular:1", str(tables["test"]))
    assert evaluation.status == "Completed"
    assert evaluation.metrics["accuracy"] > 0.8
    assert evaluation.per_class is not None and len(evaluation.per_class) == 3
    assert json.dumps(evaluation.confusion_matrix)  # 3x3, counts of the raw CSV rows
    assert sum(map(sum, evaluation.confusion_matrix or [])) == 450


def test_notebook_example_runs_as_a_job_with_its_parameters(client_env: LiveServer) -> None:
    client = naiad.Client()
    job = client.training_jobs.create(
        name="notebook-digits",
        entrypoint="digits.ipynb",
        source_dir=EXAMPLES / "notebook",
        hyperparameters={"lr": 0.1, "epochs": 8},
    )
    ended = job.wait(timeout=180)
    assert ended.status == "Completed", "".join(job.logs())
    run = client.runs.get(ended.run_id)
    assert run.metrics["val/accuracy"].count == 8  # the injected epochs, not the default 30
    assert run.metrics["val/accuracy"].value > 0.9
    assert "val/accuracy" in "".join(job.logs())
