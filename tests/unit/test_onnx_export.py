"""Export to ONNX: the graph a replica loads answers as the torch model does, and what
cannot be exported or served says so in a sentence."""

import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from naiad.core.errors import InvalidInput
from naiad.runtime import save_model
from naiad.runtime.builtin.export import ONNX_FILE, export_directory, export_onnx
from naiad.schemas.models import MANIFEST_FILE, ModelManifest
from naiad.serving.loader import ModelLoadError, choose_cpu_kernels, load_model
from naiad.serving.onnx_runtime import OnnxRuntimeMissing
from naiad.testing.endpoints import digits_network


def tabular_mlp(features: int = 20) -> nn.Module:
    return nn.Sequential(
        nn.Linear(features, 64),
        nn.ReLU(),
        nn.Dropout(0.2),  # eval mode matters: the trace must leave it out
        nn.Linear(64, 64),
        nn.ReLU(),
        nn.Linear(64, 3),
    )


def torch_answers(module: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module.eval()(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("format", ["torchscript", "torch_export"])
@pytest.mark.parametrize(
    ("make", "row"), [(digits_network, (1, 8, 8)), (tabular_mlp, (20,))], ids=["cnn", "mlp"]
)
def test_the_exported_graph_answers_as_torch_does(
    tmp_path: Path, make: type[nn.Module], row: tuple[int, ...], format: str
) -> None:
    torch.manual_seed(0)
    module = make().eval()
    source = save_model(module, torch.rand(2, *row), tmp_path / "torch", format=format)  # type: ignore[arg-type]

    gap = export_directory(source, tmp_path / "onnx")

    assert gap < 1e-4
    manifest = ModelManifest.model_validate_json((tmp_path / "onnx" / MANIFEST_FILE).read_text())
    assert (manifest.format, manifest.file) == ("onnx", ONNX_FILE)
    assert (
        manifest.signature
        == ModelManifest.model_validate_json((source / MANIFEST_FILE).read_text()).signature
    )
    served = load_model(tmp_path / "onnx", threads=1)
    assert choose_cpu_kernels(served, 64) == "onnxruntime"
    rng = np.random.default_rng(1)
    for rows in (1, 7, 64, 300):  # the batch dimension is dynamic, beyond the largest batch
        x = rng.random((rows, *row), dtype=np.float32)
        got = served(torch.from_numpy(x))
        assert got.dtype == torch.float32 and got.shape[0] == rows
        np.testing.assert_allclose(got.numpy(), torch_answers(module, x), rtol=1e-4, atol=1e-5)


def test_integer_inputs_are_cast_as_for_torch(tmp_path: Path) -> None:
    """A float model takes integer rows (the codec lets them through); the graph gets float32."""
    torch.manual_seed(0)
    module = tabular_mlp(4).eval()
    source = save_model(module, torch.rand(2, 4), tmp_path / "torch")
    export_directory(source, tmp_path / "onnx")
    served = load_model(tmp_path / "onnx")
    x = np.array([[1, 2, 3, 4], [0, 0, 0, 1]], dtype=np.int64)
    np.testing.assert_allclose(
        served(torch.from_numpy(x)).numpy(),
        torch_answers(module, x.astype(np.float32)),
        rtol=1e-4,
        atol=1e-5,
    )


# A network whose forward branches on the batch size: a trace keeps one branch. Saved as
# safetensors, the replica runs the Python (both branches), so the export check sees it.
BY_SIZE = textwrap.dedent(
    """
    import torch
    from torch import nn


    class BySize(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(4, 4)

        def forward(self, x):
            y = self.linear(x)
            return y * 2 if x.shape[0] > 2 else y
    """
)


def test_a_trace_that_depends_on_the_batch_size_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "naiad_test_by_size.py").write_text(BY_SIZE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "naiad_test_by_size", raising=False)
    import naiad_test_by_size

    source = save_model(
        naiad_test_by_size.BySize(), torch.rand(2, 4), tmp_path / "torch", format="safetensors"
    )
    with pytest.raises(InvalidInput, match=r"answers 3 random row\(s\) unlike the model \(off by"):
        export_directory(source, tmp_path / "onnx")


def test_an_operator_onnx_lacks_is_a_sentence(tmp_path: Path) -> None:
    source = save_model(tabular_mlp(4), torch.rand(2, 4), tmp_path / "torch")
    with warnings.catch_warnings():  # torch.jit's deprecation notes
        warnings.simplefilter("ignore")
        quantized = torch.ao.quantization.quantize_dynamic_jit(
            load_model(source).network, {"": torch.ao.quantization.default_dynamic_qconfig}
        )
        torch.jit.save(quantized, str(source / "model.pt"))
    with pytest.raises(InvalidInput) as refused:
        export_onnx(load_model(source), tmp_path / ONNX_FILE)
    message = refused.value.message
    assert message.startswith("torch.onnx cannot export model.pt: ")
    assert "quantized::linear_dynamic" in message and "Serve the torch version instead" in message
    assert "\n" not in message


def test_serving_refusals_are_sentences(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = save_model(tabular_mlp(4), torch.rand(2, 4), tmp_path / "torch")
    export_directory(source, tmp_path / "onnx")

    with pytest.raises(ModelLoadError, match="served by ONNX Runtime on the CPU; serve this one"):
        load_model(tmp_path / "onnx", device="cuda:0")

    (tmp_path / "onnx" / ONNX_FILE).write_bytes(b"not a graph")
    with pytest.raises(ModelLoadError, match="is not a onnx model ONNX Runtime can load"):
        load_model(tmp_path / "onnx")

    class Pair(nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return x, x * 2

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation note
        torch.onnx.export(Pair(), (torch.rand(2, 4),), tmp_path / "onnx" / ONNX_FILE, dynamo=False)
    with pytest.raises(ModelLoadError, match="1 inputs and gives 2 outputs; a replica serves"):
        load_model(tmp_path / "onnx")

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if the extra were missing
    with pytest.raises(OnnxRuntimeMissing, match=r"pip install 'naiad\[onnx\]'\.$"):
        load_model(tmp_path / "onnx")
