"""The export job: a version as an ONNX graph, written to the job's model dir.

The graph comes from torch.onnx's TorchScript-based exporter (``dynamo=False``), with
every free dimension of the signature (the batch first) left dynamic. torch 2.13 calls
that exporter legacy, yet it is the one that works here: it takes the registry's default
format, a TorchScript program, as it is, while the torch.export-based exporter
(``dynamo=True``) must trace the network again with torch.export, which refuses a
ScriptModule; and it needs only the ``onnx`` package, where the other also needs
onnxscript and onnx-ir. It exports all three of Naiad's torch formats (a torch.export
program is traced as the module it unflattens to).

Tracing records what the network did on one input, so before the job ends the graph is
loaded the way a replica loads it and run beside the source on random batches of
several sizes: outputs that differ beyond float32 tolerance fail the job, and a trace
that went wrong never becomes a version.
"""

import warnings
from pathlib import Path
from typing import Any, cast

from naiad.core.errors import InvalidInput
from naiad.runtime.context import context
from naiad.schemas.models import MANIFEST_FILE, ONNX, TensorSpec
from naiad.serving.loader import LoadedModel, first_line, load_model
from naiad.serving.onnx_runtime import require

ONNX_FILE = "model.onnx"
OPSET = 17  # every operator of it runs on ONNX Runtime 1.14 and later
RTOL, ATOL = 1e-3, 1e-4
CHECK_ROWS = (1, 3, 64)


def example(spec: TensorSpec, rows: int, seed: int = 0) -> Any:
    """``rows`` inputs of the signature, free dimensions 2 wide: uniform floats in
    [0, 1), or zeros for integer and bool inputs (any value may be out of an index's range)."""
    import torch

    shape = [rows, *(d if d > 0 else 2 for d in spec.shape[1:])]
    dtype = getattr(torch, spec.dtype)
    if not dtype.is_floating_point:
        return torch.zeros(shape, dtype=dtype)
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed)).to(dtype)


def _free(shape: list[int], name: str) -> dict[int, str]:
    """The dynamic axes of a signature's shape: its -1 dimensions, the first the batch."""
    return {i: "batch" if i == 0 else f"{name}_{i}" for i, d in enumerate(shape) if d == -1}


def export_onnx(model: LoadedModel, path: Path) -> None:
    """Write ``model``'s network to ``path`` as ONNX, its free dimensions dynamic."""
    import torch

    signature = model.manifest.signature
    outputs = signature.outputs.shape if signature.outputs is not None else [-1]
    axes = {"input": _free(signature.inputs.shape, "input"), "output": _free(outputs, "output")}
    with warnings.catch_warnings():  # the exporter's deprecation and tracer notes
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                cast(torch.nn.Module, model.network),  # every torch format loads as a module
                (example(signature.inputs, 2),),  # one row would let the trace fix the batch
                str(path),
                dynamo=False,
                input_names=["input"],
                output_names=["output"],
                dynamic_axes=axes,
                opset_version=OPSET,
                training=torch.onnx.TrainingMode.PRESERVE,  # loaded in eval mode already
            )
        except Exception as exc:
            raise InvalidInput(
                f"torch.onnx cannot export {model.manifest.file}: {first_line(exc).rstrip('.')}. "
                f"Serve the torch version instead, or use operators ONNX opset {OPSET} has."
            ) from None


def largest_difference(source: LoadedModel, exported: LoadedModel) -> float:
    """The largest gap between the two models' outputs on random batches; a gap beyond
    tolerance is refused, with what it means."""
    import torch

    largest = 0.0
    for seed, rows in enumerate(CHECK_ROWS):
        x = example(source.manifest.signature.inputs, rows, seed)
        want, got = source(x).float(), exported(x).float()
        if got.shape != want.shape or not torch.allclose(got, want, rtol=RTOL, atol=ATOL):
            gap = (got - want).abs().max().item() if got.shape == want.shape else "a shape"
            raise InvalidInput(
                f"The ONNX graph answers {rows} random row(s) unlike the model (off by {gap}, "
                f"tolerance {ATOL} + {RTOL} x |output|): the network likely branches on input "
                "values or sizes, which a trace records for one input only. Serve the torch "
                "version instead."
            )
        largest = max(largest, (got - want).abs().max().item())
    return largest


def export_directory(source: Path, out: Path) -> float:
    """Export the model directory ``source`` into ``out`` (``model.onnx`` and its manifest),
    load the graph as a replica would and check it; returns the largest output gap."""
    loaded = load_model(source)
    out.mkdir(parents=True, exist_ok=True)
    export_onnx(loaded, out / ONNX_FILE)
    copy = loaded.manifest.model_copy(
        update={"format": ONNX, "file": ONNX_FILE, "architecture": None, "architecture_kwargs": {}}
    )
    (out / MANIFEST_FILE).write_text(copy.model_dump_json(indent=2, exclude_none=True))
    return largest_difference(loaded, load_model(out))


def main() -> None:
    for module in ("onnx", "onnxruntime"):
        require(module, "Exporting a model to ONNX")
    ctx = context()
    source, out = ctx.channel("model"), ctx.model_dir
    gap = export_directory(source, out)

    def size(directory: Path) -> int:
        return sum(p.stat().st_size for p in directory.iterdir() if p.is_file())

    print(
        f"exported {ctx.hyperparameters.get_str('model', '?')} to ONNX (opset {OPSET}): "
        f"{size(source)} -> {size(out)} bytes; outputs within {gap:.2g} of torch's"
    )
