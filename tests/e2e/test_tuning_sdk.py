"""client.tuning_jobs against a live server: a search to its best trial, whose model
registers with the tuning job in its lineage; a wait that times out; a stop."""

import time
from pathlib import Path

import pytest

import naiad
from naiad.core.errors import Conflict
from naiad.sdk.tuning import TuningTimeout
from naiad.testing.live import LiveServer

# The example's bowl (best at lr=0.01, width=3), and a SageMaker-style model directory so
# each trial leaves a model that can be registered.
SCRIPT = """\
import math, os, time
from pathlib import Path

from naiad import runtime

ctx = runtime.context()
hp = ctx.hyperparameters
lr, width = hp.get_float("lr"), hp.get_int("width")
score = 1.0 - 0.15 * math.log10(lr / 0.01) ** 2 - 0.05 * (width - 3) ** 2
for step in range(hp.get_int("steps")):
    ctx.log_metrics({"score": score * (1 - math.exp(-(step + 1) / 2))}, step=step)
    time.sleep(hp.get_float("step_seconds"))
code = Path(os.environ["SM_MODEL_DIR"]) / "code"
code.mkdir(parents=True)
(code / "inference.py").write_text(f"LR = {lr!r}\\n")
"""


@pytest.fixture
def source(tmp_path: Path) -> Path:
    (tmp_path / "search.py").write_text(SCRIPT)
    return tmp_path


def test_search_to_a_registered_best(client_env: LiveServer, source: Path) -> None:
    client = naiad.Client()
    handle = client.tuning_jobs.create(
        "sdk-search",
        "search.py",
        source,
        space={"lr": "log:1e-4:1", "width": "int:1:5"},
        objective="score:max",
        max_trials=4,
        parallel=2,
        seed=3,
        hyperparameters={"steps": 3, "step_seconds": 0.05},
    )
    assert handle.name == "sdk-search" and handle.job.max_trials == 4
    with pytest.raises(Conflict, match="no completed trial yet"):
        handle.register_best("too-soon")  # nothing has completed this early
    job = handle.wait(timeout=90, poll=0.2)
    assert job.status == "Completed", job.status_reason
    assert job.counts.complete == 4 and job.template.experiment == "sdk-search"

    trials = handle.trials()
    assert [t.number for t in trials] == [0, 1, 2, 3]
    best = handle.best()
    assert best is not None and best.value is not None
    assert all(best.value >= (t.value or -1e9) for t in trials)  # trial 0 among them
    assert handle.trials(sort="objective")[0].number == best.number
    assert set(handle.importances()) == {"lr", "width"}

    version = handle.register_best("tuned", description="the best of four")
    assert version.lineage.tuning_job == "sdk-search"
    assert version.lineage.trial == best.number
    assert version.lineage.job == best.job
    assert version.lineage.hyperparameters["lr"] == best.params["lr"]
    assert version.format == "sagemaker" and version.description == "the best of four"
    other = client.tuning_jobs.register("sdk-search", "tuned", number=0)
    assert (other.version, other.lineage.trial) == (version.version + 1, 0)

    assert "sdk-search" in [j.name for j in client.tuning_jobs.list(status="Completed")]
    assert client.tuning_jobs.list(status="Running") == []


def test_wait_times_out_then_stop_ends_it(client_env: LiveServer, source: Path) -> None:
    client = naiad.Client()
    handle = client.tuning_jobs.create(
        "sdk-stop",
        "search.py",
        source,
        space=["lr=log:1e-3:1e-1", "width=cat:2,3"],
        objective="score:max",
        strategy="random",
        max_trials=20,
        hyperparameters={"steps": 600, "step_seconds": 0.05},
    )
    with pytest.raises(TuningTimeout, match=r"Tuning job sdk-stop is still .* after 0.5s"):
        handle.wait(timeout=0.5, poll=0.1)
    deadline = time.monotonic() + 30
    while not handle.trials() and time.monotonic() < deadline:
        time.sleep(0.1)
    handle.stop()
    job = handle.wait(timeout=60, poll=0.2)
    assert job.status == "Stopped" and job.status_reason == "Stop requested."
    assert job.counts.complete == 0 and job.counts.stopped >= 1
    assert handle.best() is None
