"""Sharded training end to end: examples/sharded as two-process Naiad jobs, FSDP and DDP
from one seed. FSDP holds half the parameters on each rank, both log the same losses and
leave models that evaluate alike; the example resumes from its sharded checkpoints."""

import io
import sys
import tarfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

import naiad
from naiad.testing.live import LiveServer

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sharded"
SEED = 3
EPOCHS = 2

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def example() -> Iterator[ModuleType]:
    sys.path.insert(0, str(EXAMPLE))
    try:
        import train  # examples/sharded/train.py

        yield train
    finally:
        sys.path.remove(str(EXAMPLE))
        sys.modules.pop("train", None)


@pytest.fixture(scope="module")
def jobs(live: LiveServer) -> dict[str, Any]:
    """The same training, FSDP and DDP; each job holds the executor's two slots in turn."""
    client = naiad.Client(url=live.url, token=live.token)
    submitted = {
        strategy: client.training_jobs.create(
            name=f"sharded-{strategy}",
            entrypoint="train.py",
            source_dir=EXAMPLE,
            hyperparameters={"strategy": strategy, "epochs": EPOCHS, "seed": SEED},
            processes_per_node=2,
            experiment="sharded",
        )
        for strategy in ("fsdp", "ddp")
    }
    ended = {strategy: job.wait(timeout=240) for strategy, job in submitted.items()}
    for strategy, job in submitted.items():
        assert ended[strategy].status == "Completed", "".join(job.logs())
    return {"client": client, "ended": ended}


def history(client: naiad.Client, run_id: str, key: str) -> tuple[list[int], list[float]]:
    series = client.runs.metric_history(run_id, key)
    return series.steps.tolist(), series.values.tolist()


def test_fsdp_holds_half_the_parameters_on_each_rank(
    jobs: dict[str, Any], example: ModuleType
) -> None:
    client, ended = jobs["client"], jobs["ended"]
    full = sum(p.numel() * p.element_size() for p in example.DigitsMLP().parameters())
    for rank in (0, 1):
        key = f"param_bytes/rank{rank}"
        assert history(client, ended["ddp"].run_id, key)[1] == [full]
        assert history(client, ended["fsdp"].run_id, key)[1] == [full // 2]


def test_fsdp_and_ddp_log_the_same_losses(jobs: dict[str, Any]) -> None:
    client, ended = jobs["client"], jobs["ended"]
    ddp_steps, ddp = history(client, ended["ddp"].run_id, "train/loss")
    fsdp_steps, fsdp = history(client, ended["fsdp"].run_id, "train/loss")
    assert fsdp_steps == ddp_steps == list(range(len(ddp))) and len(ddp) > 40
    assert fsdp == pytest.approx(ddp, abs=1e-4)
    assert ddp[-1] < ddp[0] / 3
    step_seconds = history(client, ended["fsdp"].run_id, "train/step_seconds")[1]
    assert len(step_seconds) == EPOCHS


def model_files(live: LiveServer, job: str) -> dict[str, bytes]:
    archive = live.home / "artifacts" / "jobs" / job / "output" / "model.tar.gz"
    with tarfile.open(archive) as tar:
        return {
            Path(m.name).name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


def test_the_consolidated_models_evaluate_alike_and_register(
    jobs: dict[str, Any], live: LiveServer, example: ModuleType
) -> None:
    _, (x_val, y_val) = example.digits()
    scores = {}
    for job in ("sharded-ddp", "sharded-fsdp"):
        files = model_files(live, job)
        assert {"model.pt", "state_dict.pt", "naiad-model.json"} <= set(files)
        plain = example.DigitsMLP()
        plain.load_state_dict(torch.load(io.BytesIO(files["state_dict.pt"]), weights_only=True))
        scores[job] = example.evaluate(plain, x_val, y_val)
        with warnings.catch_warnings():  # deprecated in torch 2.13; the model file is still it
            warnings.simplefilter("ignore", DeprecationWarning)
            traced = torch.jit.load(io.BytesIO(files["model.pt"]))
        assert example.evaluate(traced, x_val, y_val) == pytest.approx(scores[job], abs=1e-6)
    loss, accuracy = scores["sharded-fsdp"]
    assert (loss, accuracy) == pytest.approx(scores["sharded-ddp"], abs=1e-4)
    assert accuracy > 0.9

    version = jobs["client"].models.register("sharded-digits", job="sharded-fsdp")
    assert version.signature.inputs.shape == [-1, 64]
    assert version.classes == [str(d) for d in range(10)]


def test_the_example_resumes_where_it_stopped(
    example: ModuleType,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """One process, no server: an epoch, then a second resumed from the sharded checkpoint,
    ends with the weights of two epochs in one go."""
    from naiad import runtime

    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NAIAD_RUN_ID", "NAIAD_URL"):
        monkeypatch.delenv(name, raising=False)

    def run(name: str, epochs: int) -> dict[str, torch.Tensor]:
        monkeypatch.setenv("NAIAD_CHECKPOINT_DIR", str(tmp_path / name / "checkpoints"))
        monkeypatch.setenv("SM_MODEL_DIR", str(tmp_path / name / "model"))
        runtime.context.cache_clear()  # the context is read once per process
        try:
            example.main(["--epochs", str(epochs), "--hidden", "64", "--batch-size", "128"])
        finally:
            runtime.context.cache_clear()
        return torch.load(tmp_path / name / "model" / "state_dict.pt", weights_only=True)

    straight = run("straight", 2)
    run("stopped", 1)
    capsys.readouterr()
    resumed = run("stopped", 2)
    out = capsys.readouterr().out
    assert "resuming from step 11 (epoch 1)" in out and "epoch 1/2" not in out
    assert straight.keys() == resumed.keys()
    for name, tensor in straight.items():
        assert torch.equal(tensor, resumed[name]), name
