"""Static int8 and QAT on a small digits CNN: the int8 network is real (quantized kernels,
at least 3x smaller on disk), answers as the float32 one does, loads as a replica loads
it, and what cannot be quantized says so in a sentence."""

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from naiad.core.errors import InvalidInput
from naiad.runtime import quantization, save_model
from naiad.runtime.builtin.quantize import quantize as quantize_job
from naiad.runtime.context import Context, Hyperparameters
from naiad.runtime.datasets import save_npz
from naiad.serving.loader import load_model


class CNN(nn.Module):
    """The examples' digits CNN with a BatchNorm (which QAT folds into its convolution)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.BatchNorm2d(32),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(0.1), nn.Linear(1024, 128), nn.ReLU(), nn.Linear(128, 10)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


Data = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


@pytest.fixture(scope="module")
def digits() -> Data:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32)[:, None]
    y = torch.tensor(d.target)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    return x[:1400], y[:1400], x[1400:], y[1400:]


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float) -> None:
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(y))
        for i in range(0, len(y), 32):
            idx = order[i : i + 32]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


def accuracy(model: Any, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


@pytest.fixture(scope="module")
def trained(digits: Data, tmp_path_factory: pytest.TempPathFactory) -> tuple[CNN, Path]:
    """The CNN after 4 epochs, and its version directory as the registry stores it."""
    torch.manual_seed(0)
    model = CNN()
    fit(model, digits[0], digits[1], epochs=4, lr=0.002)
    directory = save_model(model.eval(), digits[0][:1], tmp_path_factory.mktemp("fp32"))
    return model, directory


def scripted(directory: Path) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.load(str(directory / "model.pt")).eval()


def file_size(model: torch.jit.ScriptModule, path: Path) -> int:
    torch.jit.save(model, str(path))
    return path.stat().st_size


def test_a_torchscript_version_becomes_modules_that_answer_the_same(
    trained: tuple[CNN, Path], digits: Data
) -> None:
    model, directory = trained
    recovered = quantization.as_module(scripted(directory), digits[2][:2])
    layers = [type(m).__name__ for m in recovered.modules()]
    assert {"Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Linear"} <= set(layers)
    with torch.no_grad():
        torch.testing.assert_close(recovered(digits[2]), model.eval()(digits[2]))
    assert all(p.requires_grad for p in recovered.parameters())  # QAT trains these


def test_qat_converts_to_a_real_int8_network_close_to_fp32(
    trained: tuple[CNN, Path], digits: Data, tmp_path: Path
) -> None:
    model, directory = trained
    x, y, x_test, y_test = digits
    fp32 = accuracy(model.eval(), x_test, y_test)

    qat = quantization.prepare_qat(scripted(directory), x[:2])
    names = {type(m).__name__ for m in qat.modules()}
    assert {"ConvBnReLU2d", "ConvReLU2d", "LinearReLU"} <= names  # fused, BatchNorm folded
    fit(qat, x, y, epochs=2, lr=1e-4)
    int8 = quantization.convert_qat(qat, x[:2])

    assert "quantized::conv2d_relu" in str(int8.inlined_graph)  # int8 kernels, not fake ones
    assert accuracy(int8, x_test, y_test) >= fp32 - 0.01
    with torch.no_grad():
        agree = (int8(x_test).argmax(1) == model(x_test).argmax(1)).float().mean().item()
    assert agree >= 0.97
    fp32_bytes = (directory / "model.pt").stat().st_size
    assert fp32_bytes >= 3 * file_size(int8, tmp_path / "int8.pt")

    saved = save_model(int8, x[:1], tmp_path / "qat", quantization="qat-int8")
    served = load_model(saved, threads=1)  # as a replica loads it
    assert served.manifest.quantization == "qat-int8"
    assert accuracy(served, x_test, y_test) == accuracy(int8, x_test, y_test)


def test_static_quantization_calibrates_on_a_few_batches(
    trained: tuple[CNN, Path], digits: Data, tmp_path: Path
) -> None:
    model, directory = trained
    x, _, x_test, y_test = digits
    batches = [x[i : i + 64] for i in range(0, 512, 64)]
    int8 = quantization.quantize_static(scripted(directory), x[:2], batches)
    assert accuracy(int8, x_test, y_test) >= accuracy(model.eval(), x_test, y_test) - 0.02
    assert (directory / "model.pt").stat().st_size >= 3 * file_size(int8, tmp_path / "s.pt")
    with pytest.raises(InvalidInput, match="calibration data"):
        quantization.quantize_static(scripted(directory), x[:2], [])


@pytest.mark.parametrize("source", ["module", "torch_export"])
def test_a_python_module_or_a_torch_export_program_quantizes_too(
    trained: tuple[CNN, Path], digits: Data, tmp_path: Path, source: str
) -> None:
    model, _ = trained
    x, _, x_test, y_test = digits
    network: Any = CNN()
    network.load_state_dict(model.state_dict())
    if source == "torch_export":
        directory = save_model(network.eval(), x[:2], tmp_path, format="torch_export")
        network = torch.export.load(str(directory / "model.pt2"))
    int8 = quantization.quantize_static(network, x[:2], [x[:256]])
    assert accuracy(int8, x_test, y_test) >= accuracy(model.eval(), x_test, y_test) - 0.02


def test_a_network_without_conv_or_linear_layers_is_refused() -> None:
    network = torch.jit.trace(nn.Sequential(nn.ReLU(), nn.Flatten()).eval(), torch.rand(2, 4))
    with pytest.raises(InvalidInput, match=r"no convolution or linear layer .*ReLU"):
        quantization.prepare_qat(network, torch.rand(2, 4))


def test_operators_without_int8_kernels_stay_in_float() -> None:
    """A GELU (no quantized kernel) between two linear layers: computed in float, the
    layers around it still int8."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(16, 64), nn.GELU(), nn.Linear(64, 4)).eval()
    x = torch.rand(256, 16)
    int8 = quantization.quantize_static(torch.jit.trace(net, x[:2]), x[:2], [x])
    graph = str(int8.inlined_graph)
    assert "quantized::linear" in graph and "gelu" in graph
    with torch.no_grad():
        torch.testing.assert_close(int8(x), net(x), atol=0.05, rtol=0.05)


def context(tmp_path: Path, data: Path, **hp: Any) -> Context:
    return Context(
        hyperparameters=Hyperparameters(hp),
        channels={"data": data},
        model_dir=tmp_path / "model",
        output_dir=tmp_path / "output" / "data",
        checkpoint_dir=tmp_path / "checkpoints",
    )


def test_the_job_writes_a_served_copy_and_refuses_data_of_another_shape(
    trained: tuple[CNN, Path], digits: Data, tmp_path: Path
) -> None:
    _, directory = trained
    x, y = digits[0].numpy(), digits[1].numpy()
    data = save_npz(tmp_path / "data" / "train.npz", x[:300], y[:300]).parent
    ctx = context(tmp_path, data, method="qat", epochs=1)
    line = quantize_job(ctx, "qat", directory, tmp_path / "qat")
    assert "qat-int8" in line and "x smaller" in line
    assert load_model(tmp_path / "qat").manifest.quantization == "qat-int8"

    flat = save_npz(tmp_path / "flat" / "rows.npz", np.zeros((10, 20), np.float32), y[:10])
    with pytest.raises(InvalidInput, match=r"rows of shape \[20\].*takes float32\[N, 1, 8, 8\]"):
        quantize_job(context(tmp_path, flat.parent), "static", directory, tmp_path / "bad")
    wrong = save_npz(tmp_path / "labels" / "rows.npz", x[:10], y[:10] + 10)
    with pytest.raises(InvalidInput, match=r"class indices 0\.\.9"):
        quantize_job(context(tmp_path, wrong.parent), "qat", directory, tmp_path / "bad")
    assert not (tmp_path / "bad" / "naiad-model.json").exists()


@pytest.mark.parametrize("format", ["torch_export", "safetensors"])
def test_the_job_fine_tunes_a_torch_export_or_safetensors_version(
    trained: tuple[CNN, Path], digits: Data, tmp_path: Path, format: str
) -> None:
    model, _ = trained
    x, y = digits[0], digits[1]
    source = save_model(model.eval(), x[:2], tmp_path / "source", format=format)  # type: ignore[arg-type]
    data = save_npz(tmp_path / "data" / "train.npz", x[:200].numpy(), y[:200].numpy()).parent
    line = quantize_job(context(tmp_path, data, epochs=1), "qat", source, tmp_path / "qat")
    assert "qat-int8" in line
    served = load_model(tmp_path / "qat", threads=1)
    assert served.manifest.format == "torchscript"
    assert accuracy(served, digits[2], digits[3]) >= accuracy(model, digits[2], digits[3]) - 0.02
