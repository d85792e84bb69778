"""TensorFlow and Keras jobs: the Keras tabular example trains on two workers under
MultiWorkerMirroredStrategy with the TF_CONFIG the job sets, its run gets fit's and
evaluate's metrics through the callback Naiad adds, and the model it saved registers and
is served by an endpoint; a Keras 3 script names the callback itself and exports a
SavedModel, which registers too; two processes of one host (torchrun) each get their own
TF_CONFIG."""

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

import naiad
from naiad.testing.live import LiveServer
from tests.conftest import EXAMPLES, example_module, need

pytestmark = pytest.mark.slow
EXAMPLE = EXAMPLES / "keras-tabular"
JOBS = Path(__file__).parent / "jobs" / "frameworks"


@pytest.fixture(autouse=True)
def _tensorflow() -> None:
    need(importlib.util.find_spec("tensorflow") is not None, "tensorflow (naiad[tensorflow])")


def test_keras_example_trains_on_two_workers_registers_and_serves(
    live: LiveServer, tmp_path: Path
) -> None:
    tables = example_module("keras-tabular", "make_data").make(tmp_path, rows=2000)
    client = naiad.Client(url=live.url, token=live.token)
    job = client.training_jobs.create(
        name="keras-tabular",
        entrypoint="train.py",
        source_dir=EXAMPLE,
        nodes=2,
        hyperparameters={"epochs": 6},
        inputs={"train": str(tables["train"]), "test": str(tables["test"])},
    )
    done = job.wait(timeout=300)
    log = "".join(job.logs())
    assert done.status == "Completed", f"{done.status_reason}\n{log[-3000:]}"
    assert "framework: tensorflow" in log
    assert "workers 2 test loss" in log  # one MultiWorkerMirroredStrategy of two
    run = client.runs.get(done.run_id)
    assert client.runs.metric_history(done.run_id, "loss").steps.tolist() == list(range(6))
    assert run.metrics["val_loss"].count == 6  # validation_split's, once an epoch
    # 1800 training rows, a global batch of 128: 15 batches an epoch, 90 in all; every 10th
    # is logged, by rank 0 alone
    batches = client.runs.metric_history(done.run_id, "batch/loss").steps.tolist()
    assert batches == list(range(10, 91, 10)), batches
    assert run.metrics["eval_mae"].value < 0.6  # model.evaluate on the test channel
    assert run.params["epochs"] == 6 and run.params["optimizer.learning_rate"] == 0.001
    assert run.params["loss"] == "mse"

    version = client.models.register("keras-tabular", job="keras-tabular")
    assert version.format == "keras"
    assert version.signature is not None and version.signature.inputs.shape == [-1, 8]
    endpoint = client.endpoints.deploy("keras-tabular", model="keras-tabular:1", wait=True)
    try:
        rows = np.loadtxt(tables["test"] / "test.csv", delimiter=",", skiprows=1)[:64]
        predicted = endpoint.predict(rows[:, :8].astype("float32"))
        assert predicted.shape == (64, 1)
        assert float(np.abs(predicted[:, 0] - rows[:, 8]).mean()) < 0.6
    finally:
        client.endpoints.delete("keras-tabular", wait=True)


def test_a_keras3_script_with_the_callback_exports_a_savedmodel_that_registers(
    live: LiveServer,
) -> None:
    client = naiad.Client(url=live.url, token=live.token)
    job = client.training_jobs.create(name="keras3", entrypoint="keras3_job.py", source_dir=JOBS)
    done = job.wait(timeout=300)
    log = "".join(job.logs())
    assert done.status == "Completed", f"{done.status_reason}\n{log[-3000:]}"
    assert "keras 3." in log
    # the script's own callback alone: each step once (a second one would log it twice)
    steps = client.runs.metric_history(done.run_id, "batch/loss").steps.tolist()
    assert steps == [2, 4, 6, 8], steps
    assert client.runs.metric_history(done.run_id, "loss").steps.tolist() == [0, 1]
    version = client.models.register("keras3", job="keras3")
    assert version.format == "tf_savedmodel"
    assert version.signature is not None
    assert version.signature.inputs.shape == [-1, 4]
    assert version.signature.outputs is not None and version.signature.outputs.shape == [-1, 2]


@pytest.mark.xfail(
    strict=False,
    reason="known bug: under a loaded suite one rank's gRPC server sometimes fails to start "
    "('Could not start gRPC server'); cause not found yet, see docs/frameworks.md",
)
def test_two_processes_of_one_host_each_get_their_own_tf_config(live: LiveServer) -> None:
    """Under torchrun every process shares one environment: the runner sets each rank's
    TF_CONFIG index from its RANK, and the two train as one (the same weights)."""
    client = naiad.Client(url=live.url, token=live.token)
    job = client.training_jobs.create(
        name="tf-ranks", entrypoint="tf_ranks_job.py", source_dir=JOBS, processes_per_node=2
    )
    done = job.wait(timeout=300)
    log = "".join(job.logs())
    assert done.status == "Completed", f"{done.status_reason}\n{log[-3000:]}"
    found = dict(re.findall(r"rank (\d) index \1 of 2 weight (\S+)", log))
    assert set(found) == {"0", "1"}, log[-2000:]
    assert found["0"] == found["1"]  # one model, kept in sync by the strategy
    assert client.runs.metric_history(done.run_id, "loss").steps.tolist() == [0, 1]
