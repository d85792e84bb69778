"""The quantization job: a dynamic-int8 copy of a version, written to the job's model dir.

Dynamic quantization stores Linear (and LSTM) weights as int8 and quantizes
activations on the fly, so it needs no calibration data. The copy is TorchScript
whatever the source format, and its manifest says ``quantization: dynamic-int8``.
"""

from naiad.core.errors import InvalidInput
from naiad.runtime.context import context
from naiad.schemas.models import MANIFEST_FILE

QUANTIZED_FILE = "model.pt"


def main() -> None:
    import torch
    from torch.ao.quantization import (
        default_dynamic_qconfig,
        quantize_dynamic,
        quantize_dynamic_jit,
    )

    from naiad.serving.loader import load_model

    ctx = context()
    source = ctx.channel("model")
    loaded = load_model(source)
    manifest, network = loaded.manifest, loaded.network
    spec = manifest.signature.inputs
    example = torch.zeros(
        [1 if d == -1 else d for d in spec.shape], dtype=getattr(torch, spec.dtype)
    )
    if manifest.format == "torchscript":
        quantized = quantize_dynamic_jit(network, {"": default_dynamic_qconfig})
    elif manifest.format == "safetensors":
        quantized = torch.jit.trace(quantize_dynamic(network, dtype=torch.qint8), example)
    else:
        raise InvalidInput(
            f"Dynamic quantization takes TorchScript or safetensors models; this one is "
            f"{manifest.format}. Register it as TorchScript (save_model's default) first."
        )
    out = ctx.model_dir
    out.mkdir(parents=True, exist_ok=True)
    torch.jit.save(quantized, str(out / QUANTIZED_FILE))
    copy = manifest.model_copy(
        update={
            "format": "torchscript",
            "file": QUANTIZED_FILE,
            "quantization": "dynamic-int8",
            "architecture": None,
            "architecture_kwargs": {},
        }
    )
    (out / MANIFEST_FILE).write_text(copy.model_dump_json(indent=2, exclude_none=True))
    before = (source / manifest.file).stat().st_size
    after = (out / QUANTIZED_FILE).stat().st_size
    print(f"quantized {ctx.hyperparameters.get_str('model', '?')}: {before} -> {after} bytes")
