"""The quantization job: an int8 copy of a version, written to the job's model dir.

Three methods (hyperparameter ``method``), each giving a TorchScript copy whose manifest
says which:

- ``dynamic`` (``dynamic-int8``): Linear (and LSTM) weights stored as int8, activations
  quantized on the fly; no data needed.
- ``static`` (``static-int8``): convolutions and linear layers int8 in weights and
  activations, the activation ranges calibrated on the ``data`` channel's rows.
- ``qat`` (``qat-int8``): the network fine-tuned on the ``data`` channel with fake
  quantization (``epochs``, ``lr``, ``batch_size``), then converted to int8.

Static and QAT go through :mod:`naiad.runtime.quantization`. Before the job ends the copy
is loaded as a replica loads it, so a copy no endpoint could serve never becomes a
version. A problem with the model or the data ends the job with one sentence in
``output/failure``, which is what the job's status reason (and the CLI) says.
"""

import sys
from pathlib import Path
from typing import Any

import numpy as np

from naiad.core.errors import InvalidInput, NaiadError
from naiad.runtime.builtin.evaluate import fit_to_signature
from naiad.runtime.context import Context, context
from naiad.runtime.datasets import load_labelled
from naiad.schemas.models import MANIFEST_FILE, TensorManifest, TensorSpec

QUANTIZED_FILE = "model.pt"
DATA_CHANNEL = "data"
CALIBRATION_ROWS = 2048  # activation ranges settle long before; more only costs time
CALIBRATION_BATCH = 64
LABELS = {"dynamic": "dynamic-int8", "static": "static-int8", "qat": "qat-int8"}


def _dynamic(manifest: TensorManifest, network: Any, example: Any) -> Any:
    import torch
    from torch.ao.quantization import (
        default_dynamic_qconfig,
        quantize_dynamic,
        quantize_dynamic_jit,
    )

    if manifest.format == "torchscript":
        return quantize_dynamic_jit(network, {"": default_dynamic_qconfig})
    if manifest.format == "safetensors":
        return torch.jit.trace(quantize_dynamic(network, dtype=torch.qint8), example)
    raise InvalidInput(
        f"Dynamic quantization takes TorchScript or safetensors models; this one is "
        f"{manifest.format}. Register it as TorchScript (save_model's default) first."
    )


def labelled_rows(directory: Path, spec: TensorSpec) -> tuple[np.ndarray, np.ndarray]:
    """The channel's rows cast and shaped to the model's signature, or why they do not fit."""
    x, y = load_labelled(directory)
    x = fit_to_signature(x, spec.shape, spec.dtype)
    want = spec.shape[1:]
    got = list(x.shape[1:])
    if len(got) != len(want) or any(w not in (-1, g) for w, g in zip(want, got, strict=False)):
        raise InvalidInput(
            f"The data has rows of shape {got} ({x[0].size} values each); the model takes "
            f"{spec.describe()}. Give data of the shape the model was trained on."
        )
    if len(x) == 0:
        raise InvalidInput("The data holds no rows.")
    return x, y


def _check_labels(y: np.ndarray, classes: int) -> np.ndarray:
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= classes:
        raise InvalidInput(
            f"QAT fine-tunes a classifier: labels must be class indices 0..{classes - 1} for "
            f"the model's {classes} outputs; the data's run from {y.min()} to {y.max()}."
        )
    return y.astype(np.int64)


def _source(manifest: TensorManifest, directory: Path, loaded: Any) -> Any:
    """What FX quantization starts from: the TorchScript module, the torch.export program
    (not the module a replica unflattens), or the safetensors architecture's module."""
    import torch

    if manifest.format == "torch_export":
        return torch.export.load(str(directory / manifest.file))
    return loaded


def _static(ctx: Context, network: Any, example: Any, spec: TensorSpec) -> Any:
    import torch

    from naiad.runtime import quantization

    x, _ = labelled_rows(ctx.channel(DATA_CHANNEL), spec)
    order = np.random.default_rng(0).permutation(len(x))[:CALIBRATION_ROWS]
    rows = torch.from_numpy(np.ascontiguousarray(x[order]))
    batches = [rows[i : i + CALIBRATION_BATCH] for i in range(0, len(rows), CALIBRATION_BATCH)]
    print(f"calibrating on {len(rows)} rows")
    return quantization.quantize_static(network, example, batches), rows


def _qat(ctx: Context, network: Any, example: Any, spec: TensorSpec, classes: int) -> Any:
    import torch
    import torch.nn.functional as F

    from naiad.runtime import quantization

    hp = ctx.hyperparameters
    epochs, lr, batch = (
        hp.get_int("epochs", 3),
        hp.get_float("lr", 1e-4),
        hp.get_int("batch_size", 32),
    )
    x, y = labelled_rows(ctx.channel(DATA_CHANNEL), spec)
    xs, ys = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(_check_labels(y, classes))
    torch.manual_seed(0)
    qat = quantization.prepare_qat(network, example)
    optimizer = torch.optim.Adam(qat.parameters(), lr=lr)
    print(f"fine-tuning with fake quantization: {len(xs)} rows, {epochs} epochs, lr {lr}")
    for epoch in range(epochs):
        if epoch == epochs - 1 and epochs > 1:
            quantization.freeze(qat)  # the last epoch trains against fixed ranges
        qat.train()
        order = torch.randperm(len(ys))
        total = correct = 0.0
        for i in range(0, len(ys), batch):
            idx = order[i : i + batch]
            logits = qat(xs[idx])
            loss = F.cross_entropy(logits, ys[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            correct += (logits.argmax(1) == ys[idx]).sum().item()
        figures = {"train/loss": total / len(ys), "train/accuracy": correct / len(ys)}
        ctx.log_metrics({"epoch": epoch, **figures}, step=epoch)
        print(
            f"epoch {epoch + 1}/{epochs}  loss {figures['train/loss']:.4f}  "
            f"accuracy {figures['train/accuracy']:.4f}",
            flush=True,
        )
    return quantization.convert_qat(qat, example), xs[:CALIBRATION_ROWS]


def _agreement(source: Any, copy: Any, rows: Any) -> float:
    """The share of rows whose top output the int8 copy and the source agree on."""
    import torch

    with torch.inference_mode():
        want = torch.cat([source(rows[i : i + 512]) for i in range(0, len(rows), 512)])
        got = torch.cat([copy(rows[i : i + 512]) for i in range(0, len(rows), 512)])
    return float((want.argmax(-1) == got.argmax(-1)).float().mean())


def quantize(ctx: Context, method: str, source: Path, out: Path) -> str:
    """Write the ``method`` int8 copy of the model directory ``source`` into ``out``;
    returns a line saying what it did."""
    import torch

    from naiad.serving.loader import load_model

    if method not in LABELS:
        raise InvalidInput(f"method must be one of {', '.join(LABELS)}; got {method!r}.")
    loaded = load_model(source)
    manifest = loaded.manifest
    spec = manifest.signature.inputs
    rows = None
    if method == "dynamic":
        example = torch.zeros(
            [1 if d == -1 else d for d in spec.shape], dtype=getattr(torch, spec.dtype)
        )
        quantized = _dynamic(manifest, loaded.network, example)
    else:
        example = torch.zeros([2, *(1 if d == -1 else d for d in spec.shape[1:])])
        network = _source(manifest, source, loaded.network)
        if method == "static":
            quantized, rows = _static(ctx, network, example, spec)
        else:
            classes = int(loaded(example).shape[-1])
            quantized, rows = _qat(ctx, network, example, spec, classes)
    out.mkdir(parents=True, exist_ok=True)
    torch.jit.save(quantized, str(out / QUANTIZED_FILE))
    copy = manifest.model_copy(
        update={
            "format": "torchscript",
            "file": QUANTIZED_FILE,
            "quantization": LABELS[method],
            "architecture": None,
            "architecture_kwargs": {},
        }
    )
    (out / MANIFEST_FILE).write_text(copy.model_dump_json(indent=2, exclude_none=True))
    served = load_model(out)  # as a replica loads it: a copy that does not load fails here
    before = (source / manifest.file).stat().st_size
    after = (out / QUANTIZED_FILE).stat().st_size
    line = f"{LABELS[method]}: {before} -> {after} bytes ({before / after:.1f}x smaller)"
    if rows is not None:
        agreed = _agreement(loaded, served, rows)
        line += f"; the float32 model's top class on {agreed:.1%} of {len(rows)} rows"
    return line


def main() -> None:
    ctx = context()
    method = ctx.hyperparameters.get_str("method", "dynamic")
    try:
        line = quantize(ctx, method, ctx.channel("model"), ctx.model_dir)
    except NaiadError as exc:
        # SageMaker's convention: the reason the job failed, in one sentence.
        ctx.write_failure(str(exc))
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    print(f"quantized {ctx.hyperparameters.get_str('model', '?')}, {line}")
