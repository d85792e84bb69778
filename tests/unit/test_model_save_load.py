"""save_model writes a directory load_model serves, in every format, with the same outputs."""

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from naiad.core.errors import InvalidInput
from naiad.runtime import save_model
from naiad.runtime.context import context
from naiad.schemas.models import MANIFEST_FILE
from naiad.serving.loader import ModelLoadError, load_model

# The network a safetensors model names as module:Class must be importable by the replica,
# so the test writes it as a module on sys.path, as a user's package would be.
NETWORK = textwrap.dedent(
    """
    from torch import nn


    class Digits(nn.Module):
        def __init__(self, hidden: int = 16) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)
            self.drop = nn.Dropout(0.5)  # eval mode matters: outputs differ in training
            self.head = nn.Linear(4 * 6 * 6, hidden)
            self.out = nn.Linear(hidden, 10)

        def forward(self, x):
            h = self.drop(self.conv(x).relu().flatten(1))
            return self.out(self.head(h).relu())
    """
)


@pytest.fixture
def network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[type[nn.Module]]:
    package = tmp_path / "userpkg"
    package.mkdir()
    (package / "naiad_test_networks.py").write_text(NETWORK)
    monkeypatch.syspath_prepend(str(package))
    import naiad_test_networks

    yield naiad_test_networks.Digits
    sys.modules.pop("naiad_test_networks", None)


@pytest.fixture
def job_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A job's environment: the model dir, rank 0 unless a test says otherwise."""
    model_dir = tmp_path / "job" / "model"
    monkeypatch.setenv("SM_MODEL_DIR", str(model_dir))
    monkeypatch.delenv("RANK", raising=False)
    context.cache_clear()
    yield model_dir
    context.cache_clear()


def batch(rows: int = 5) -> torch.Tensor:
    return torch.rand(rows, 1, 8, 8, generator=torch.Generator().manual_seed(rows))


@pytest.mark.parametrize("format", ["torchscript", "torch_export", "safetensors"])
def test_round_trip_gives_the_same_outputs(
    format: str, network: type[nn.Module], job_env: Path, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    module = network(hidden=12)
    module.train()
    kwargs = {"architecture_kwargs": {"hidden": 12}} if format == "safetensors" else {}
    directory = save_model(
        module, batch(1), tmp_path / format, classes=list("0123456789"), format=format, **kwargs
    )
    assert module.training, "save_model leaves the module in the mode it found it"

    manifest = json.loads((directory / MANIFEST_FILE).read_text())
    assert manifest["format"] == format
    assert manifest["signature"] == {
        "inputs": {"shape": [-1, 1, 8, 8], "dtype": "float32"},
        "outputs": {"shape": [-1, 10], "dtype": "float32"},
    }
    assert manifest["classes"] == list("0123456789")
    assert (directory / manifest["file"]).is_file()
    if format == "safetensors":
        assert manifest["architecture"] == "naiad_test_networks:Digits"

    loaded = load_model(directory)
    x = batch(7)  # another batch size than the example's
    module.eval()
    with torch.no_grad():
        expected = module(x)
    torch.testing.assert_close(loaded(x), expected)


def test_default_directory_is_the_jobs_model_dir(network: type[nn.Module], job_env: Path) -> None:
    assert save_model(network(), batch(2)) == job_env
    assert (job_env / MANIFEST_FILE).is_file() and (job_env / "model.pt").is_file()


def test_only_rank_zero_writes(
    network: type[nn.Module], job_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RANK", "1")
    context.cache_clear()
    assert save_model(network(), batch(2)) == job_env
    assert not job_env.exists()


def test_save_refusals_say_what_to_do(network: type[nn.Module], job_env: Path) -> None:
    with pytest.raises(InvalidInput, match="classes has 3 names but the model's output is"):
        save_model(network(), batch(2), classes=["a", "b", "c"])

    class Local(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1)

    with pytest.raises(InvalidInput, match="move it into a module"):
        save_model(Local(), batch(2), format="safetensors")

    class Pair(nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return x, x

    with pytest.raises(InvalidInput, match="must be one tensor"):
        save_model(Pair(), batch(2))


def test_load_errors_are_one_sentence(network: type[nn.Module], tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=f"has no {MANIFEST_FILE}; save the model with"):
        load_model(tmp_path)

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / MANIFEST_FILE).write_text('{"format": "pickle", "file": "m.pkl"}')
    with pytest.raises(ModelLoadError, match="is not a valid manifest: format: "):
        load_model(broken)

    directory = save_model(
        network(hidden=8),
        batch(2),
        tmp_path / "weights",
        format="safetensors",
        architecture_kwargs={"hidden": 8},
    )
    manifest = json.loads((directory / MANIFEST_FILE).read_text())

    def rewrite(**changes: object) -> None:
        (directory / MANIFEST_FILE).write_text(json.dumps({**manifest, **changes}))

    rewrite(format="torchscript")  # says TorchScript, holds safetensors
    with pytest.raises(ModelLoadError, match="is not a torchscript model this torch can load"):
        load_model(directory)
    rewrite(architecture_kwargs={"hidden": 9})
    with pytest.raises(
        ModelLoadError, match=r"do not fit naiad_test_networks:Digits: .*size mismatch"
    ):
        load_model(directory)
    rewrite(architecture="naiad_no_such_module:Digits")
    with pytest.raises(ModelLoadError, match=r"cannot be imported .* install the package"):
        load_model(directory)
    rewrite(file="missing.safetensors")
    with pytest.raises(ModelLoadError, match=r"names 'missing\.safetensors', which is not in"):
        load_model(directory)
    rewrite(signature={"inputs": {"shape": [-1, 3], "dtype": "float32"}})
    with pytest.raises(ModelLoadError, match=r"fails on inputs float32\[N, 3\] that its manifest"):
        load_model(directory)
