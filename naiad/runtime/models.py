"""Save a trained network as a model directory an endpoint can load without unpickling.

The directory holds one model file and ``naiad-model.json`` (the manifest the registry
and the replicas read). The signature comes from the example input, so a replica can
check requests before they reach the network::

    runtime.save_model(model, x_train[:1], classes=[str(d) for d in range(10)])
"""

import importlib
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast, get_args

from naiad.core.errors import InvalidInput

if TYPE_CHECKING:  # pydantic loads on the first save, not with ``import naiad.runtime``
    from naiad.schemas.common import ParamValue
    from naiad.schemas.models import ModelFormat, TensorSpec

FILES: dict[str, str] = {
    "torchscript": "model.pt",
    "torch_export": "model.pt2",
    "safetensors": "model.safetensors",
}


def _spec(tensor: Any, what: str) -> "TensorSpec":
    """The tensor's spec with its first (batch) dimension left free."""
    import torch

    from naiad.schemas.models import DType, TensorSpec

    if not isinstance(tensor, torch.Tensor):
        raise InvalidInput(
            f"The model's {what} must be one tensor to be served; got {type(tensor).__name__}."
        )
    dtype = str(tensor.dtype).removeprefix("torch.")
    if dtype not in get_args(DType):
        raise InvalidInput(
            f"The model's {what} has dtype {dtype}; servable dtypes are "
            f"{', '.join(get_args(DType))}."
        )
    if tensor.dim() == 0:
        raise InvalidInput(f"The model's {what} needs a batch dimension; got a scalar.")
    return TensorSpec(shape=[-1, *tensor.shape[1:]], dtype=cast(DType, dtype))


def _architecture(module: Any) -> str:
    """``module:Class`` of the network, refused when a replica could not import it."""
    cls = type(module)
    name = f"{cls.__module__}:{cls.__qualname__}"
    if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
        raise InvalidInput(
            f"format='safetensors' needs the network's class importable by the replica, but "
            f"{name} is defined in a script or function; move it into a module, or save "
            "with format='torchscript'."
        )
    try:
        found: Any = importlib.import_module(cls.__module__)
        for part in cls.__qualname__.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError):
        found = None
    if found is not cls:
        raise InvalidInput(f"format='safetensors' needs {name} importable; importing it failed.")
    return name


def _write_model(module: Any, example: Any, path: Path, format: "ModelFormat") -> None:
    import torch

    if format == "torchscript":
        with warnings.catch_warnings():  # deprecated in torch 2.13, still the fastest to serve
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.jit.trace(module, example).save(str(path))
    elif format == "torch_export":
        if example.shape[0] < 2:  # export specializes a size-1 dimension: give it two rows
            example = example.expand(2, *example.shape[1:]).contiguous()
        batch = torch.export.Dim("batch")
        program = torch.export.export(module, (example,), dynamic_shapes=({0: batch},))
        torch.export.save(program, str(path))
    else:
        from safetensors.torch import save_model as save_safetensors

        save_safetensors(module, str(path))


def save_model(
    module: Any,
    example_input: Any,
    directory: str | Path | None = None,
    *,
    classes: Sequence[str] | None = None,
    format: "ModelFormat" = "torchscript",
    architecture_kwargs: "dict[str, ParamValue] | None" = None,
    quantization: str | None = None,
) -> Path:
    """Write ``module`` and its manifest to ``directory`` (default: the job's model dir).

    ``example_input`` is a batch (its first dimension is the batch); the network runs on it
    once in eval mode to trace it and to record the output's shape. ``classes`` names the
    output columns, so an endpoint can answer labels. ``format="safetensors"`` stores weights
    only, for a class a replica can import, built with ``architecture_kwargs``. In a
    distributed job only rank 0 writes; every rank gets the directory back.
    ``quantization`` records how an int8 network was made (``qat-int8``, say: see
    :mod:`naiad.runtime.quantization`), as the registry's own quantized copies do.
    """
    import torch

    from naiad.runtime.context import context
    from naiad.schemas.models import MANIFEST_FILE, ModelManifest, Signature

    if format not in FILES:
        raise InvalidInput(f"format must be one of {', '.join(FILES)}; got {format!r}.")
    if architecture_kwargs and format != "safetensors":
        raise InvalidInput("architecture_kwargs applies to format='safetensors' only.")
    ctx = context()
    target = Path(directory) if directory is not None else ctx.model_dir
    if not ctx.is_main:
        return target
    if isinstance(module, torch.nn.parallel.DistributedDataParallel):
        module = module.module
    example = torch.as_tensor(example_input)
    inputs = _spec(example, "input")
    was_training = getattr(module, "training", False)  # a frozen TorchScript module has none
    if was_training:
        module.eval()
    try:
        with torch.no_grad():
            outputs = _spec(module(example), "output")
            if classes is not None and outputs.shape[1:] != [len(classes)]:
                raise InvalidInput(
                    f"classes has {len(classes)} names but the model's output is "
                    f"{outputs.describe()}; give one name per output column."
                )
            manifest = ModelManifest(
                format=format,
                file=FILES[format],
                signature=Signature(inputs=inputs, outputs=outputs),
                classes=list(classes) if classes is not None else None,
                architecture=_architecture(module) if format == "safetensors" else None,
                architecture_kwargs=architecture_kwargs or {},
                quantization=quantization,
            )
            target.mkdir(parents=True, exist_ok=True)
            _write_model(module, example, target / manifest.file, format)
    finally:
        if was_training:
            module.train()
    # The manifest goes last, atomically: a directory with one is complete.
    tmp = target / f".{MANIFEST_FILE}.tmp"
    tmp.write_text(manifest.model_dump_json(indent=2))
    os.replace(tmp, target / MANIFEST_FILE)
    return target
