"""The runtime reads the job contract (SageMaker's variables) and checkpoints atomically."""

import json
from pathlib import Path

import pytest
import torch

from naiad.core.errors import InvalidInput
from naiad.runtime import checkpoints
from naiad.runtime.context import from_environ


def contract(tmp_path: Path) -> dict[str, str]:
    return {
        "SM_HPS": json.dumps({"lr": 0.001, "epochs": "20", "amp": "false"}),
        "SM_CHANNELS": json.dumps(["train", "val-set"]),
        "SM_CHANNEL_TRAIN": str(tmp_path / "input/data/train"),
        "SM_CHANNEL_VAL_SET": str(tmp_path / "input/data/val-set"),
        "SM_MODEL_DIR": str(tmp_path / "model"),
        "SM_OUTPUT_DATA_DIR": str(tmp_path / "output/data"),
        "NAIAD_CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
        "RANK": "1",
        "LOCAL_RANK": "1",
        "WORLD_SIZE": "2",
        "NAIAD_JOB_NAME": "digits-1",
    }


def test_context_from_sagemaker_variables(tmp_path: Path) -> None:
    ctx = from_environ(contract(tmp_path))
    assert ctx.hyperparameters.get_float("lr") == 0.001
    assert ctx.hyperparameters.get_int("epochs") == 20
    assert ctx.hyperparameters.get_bool("amp") is False
    assert ctx.hyperparameters.get_int("batch", 64) == 64
    assert ctx.channel("val-set") == tmp_path / "input/data/val-set"
    assert (ctx.rank, ctx.world_size, ctx.is_main) == (1, 2, False)
    assert ctx.model_dir == tmp_path / "model" and ctx.job_name == "digits-1"


def test_context_errors_say_what_to_pass(tmp_path: Path) -> None:
    ctx = from_environ(contract(tmp_path))
    with pytest.raises(InvalidInput, match="--input test=URI"):
        ctx.channel("test")
    with pytest.raises(InvalidInput, match="--hp depth=VALUE"):
        ctx.hyperparameters.get_int("depth")
    with pytest.raises(InvalidInput, match="not a valid int"):
        ctx.hyperparameters.get_int("lr")


def test_checkpoints_resume_latest_and_prune(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RANK", "0")
    assert checkpoints.latest(tmp_path) is None
    for step in (10, 20, 30, 40):
        checkpoints.save({"w": torch.full((2,), float(step))}, step=step, keep=2, where=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ckpt-000000000030.pt",
        "ckpt-000000000040.pt",
    ]
    got = checkpoints.latest(tmp_path)
    assert got is not None and got["step"] == 40
    assert torch.equal(got["state"]["w"], torch.full((2,), 40.0))


def test_only_rank_zero_saves(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("RANK", "1")
    assert checkpoints.save({"w": torch.zeros(1)}, step=1, where=tmp_path) is None
    assert list(tmp_path.iterdir()) == []
