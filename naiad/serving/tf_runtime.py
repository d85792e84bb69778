"""A TensorFlow model behind the same call as a torch network: a tensor batch in, a tensor
out. The model is a Keras file (``.keras``) or a SavedModel folder.

TensorFlow is an optional dependency (the ``tensorflow`` extra), imported here only when
such a model is loaded (the loader imports this module only then), as ONNX Runtime is.
Behind one call the replica keeps a single path for every format: the same batcher,
codec, metrics and warm-up. A ``.keras`` file is loaded by the Keras that wrote it:
``tf_keras`` (Keras 2, what ``tf.keras`` is in a Naiad TensorFlow job) or Keras 3, read
from the file's own ``metadata.json``. The network runs as one ``tf.function`` whose
batch dimension is free, so a new batch size is not a new trace.
"""

import contextlib
import importlib
import json
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from naiad.core.errors import NaiadError
from naiad.schemas.models import (
    KERAS,
    TF_SAVEDMODEL,
    DType,
    ModelFormat,
    ModelManifest,
    Signature,
    TensorSpec,
)

INSTALL = "pip install 'naiad[tensorflow]'"
DTYPES: tuple[DType, ...] = (
    "float32", "float64", "float16", "bfloat16", "int64", "int32", "uint8", "bool"
)  # fmt: skip


class TensorFlowMissing(NaiadError):
    """The ``tensorflow`` extra is not installed where a TensorFlow model is loaded."""

    code = "tensorflow_missing"


def require(module: str, what: str) -> ModuleType:
    """Import ``module`` (tensorflow, tf_keras, keras) or say which extra brings it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise TensorFlowMissing(
            f"{what} needs the {module} package, which is not installed here: {INSTALL}."
        ) from None


def tensorflow(threads: int | None = None) -> ModuleType:
    """TensorFlow, its thread pools sized before its runtime starts: ``threads`` intra-op
    (1 runs each op on the calling thread, the model thread), one inter-op."""
    tf = require("tensorflow", "Loading a TensorFlow model")
    if threads is not None:
        with contextlib.suppress(RuntimeError):  # the runtime already started
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
    return tf


def keras_version(path: Path) -> str:
    """The version of Keras that wrote a ``.keras`` file (its ``metadata.json``)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return str(json.loads(archive.read("metadata.json"))["keras_version"])
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise ValueError(f"{path.name} is not a .keras file ({exc})") from None


def load_keras(path: Path) -> Any:
    """The Keras model in ``path``, by the Keras that saved it, not compiled (TensorFlow
    already imported by ``load_network``, its threads sized)."""
    if keras_version(path).startswith("2."):
        keras = require("tf_keras", "A .keras file saved by tf.keras (Keras 2)")
    else:
        keras = require("keras", "A .keras file saved by Keras 3")
    return keras.models.load_model(str(path), compile=False)


def _spec(shape: Any, dtype: Any) -> TensorSpec:
    name = getattr(dtype, "name", str(dtype))
    if name not in DTYPES:
        raise ValueError(f"a replica serves {', '.join(DTYPES)} tensors; this one is {name}")
    dims = [-1 if d is None else int(d) for d in shape]
    if not dims:
        raise ValueError("a replica serves a batch: the model must take a tensor of rank >= 1")
    return TensorSpec(shape=[-1, *dims[1:]], dtype=name)


@dataclass
class TfNetwork:
    """One TensorFlow function called like a torch module on a CPU tensor batch."""

    function: Callable[[Any], Any]
    inputs: TensorSpec

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        out = self.function(np.ascontiguousarray(batch.numpy()))
        if isinstance(out, dict):
            out = next(iter(out.values()))
        return torch.from_numpy(np.asarray(out))


def _single(items: list[Any], what: str) -> Any:
    if len(items) != 1:
        raise ValueError(f"the model has {len(items)} {what}; a replica serves models of one")
    return items[0]


def load_network(path: Path, format: str, threads: int | None = None) -> TfNetwork:
    """The model at ``path`` (a ``.keras`` file, or a SavedModel folder and its
    ``serving_default`` signature) as a :class:`TfNetwork`."""
    tf = tensorflow(threads)
    if format == KERAS:
        model = load_keras(path)
        tensor = _single(list(model.inputs), "inputs")
        inputs = _spec(tensor.shape, tensor.dtype)
        signature = [tf.TensorSpec([None, *inputs.shape[1:]], inputs.dtype)]
        call = tf.function(lambda x: model(x, training=False), input_signature=signature)
        return TfNetwork(call, inputs)
    loaded = tf.saved_model.load(str(path))
    serving = loaded.signatures.get("serving_default")
    if serving is None:
        raise ValueError("the SavedModel has no serving_default signature")
    _, named = serving.structured_input_signature
    name, spec = _single(list(named.items()), "inputs")
    _single(list(serving.structured_outputs), "outputs")
    inputs = _spec(spec.shape, spec.dtype)
    return TfNetwork(lambda x: serving(**{name: tf.constant(x)}), inputs)


def describe(path: Path, format: str) -> tuple[TensorSpec, TensorSpec]:
    """What the model at ``path`` takes and gives, found by running it on zeros."""
    network = load_network(path, format)
    inputs = network.inputs
    shape = [2, *(d if d > 0 else 1 for d in inputs.shape[1:])]
    dtype = getattr(torch, inputs.dtype)
    out = network(torch.zeros(shape, dtype=dtype))
    return inputs, _spec([None, *out.shape[1:]], str(out.dtype).removeprefix("torch."))


def saved_models(model_dir: Path) -> list[tuple[ModelFormat, str]]:
    """``(format, path relative to model_dir)`` of each model saved there: ``.keras`` files
    at the top, SavedModel folders at the top or one level down (TF Serving's ``1/``)."""
    if (model_dir / "saved_model.pb").is_file():
        return [(TF_SAVEDMODEL, ".")]
    found: list[tuple[ModelFormat, str]] = []
    for path in sorted(model_dir.iterdir()) if model_dir.is_dir() else ():
        if path.is_file() and path.suffix == ".keras":
            found.append((KERAS, path.name))
        elif path.is_dir() and (path / "saved_model.pb").is_file():
            found.append((TF_SAVEDMODEL, path.name))
    return found


def manifest_for(model_dir: Path) -> ModelManifest:
    """The manifest of the one TensorFlow model in ``model_dir``; ValueError with a
    sentence when it holds none or several."""
    found = saved_models(model_dir)
    if len(found) != 1:
        what = ", ".join(path for _, path in found) or "no .keras file or SavedModel"
        raise ValueError(f"the model folder has {what}; keep one model there")
    format, file = found[0]
    inputs, outputs = describe(model_dir / file, format)
    return ModelManifest(
        format=format, file=file, signature=Signature(inputs=inputs, outputs=outputs)
    )


def main(argv: list[str]) -> int:
    """``python -m naiad.serving.tf_runtime DIR``: the manifest of the model in DIR on
    stdout, or why there is none on stderr (exit 1). The server asks this of an archive it
    registers without a manifest, so that it never loads TensorFlow itself."""
    try:
        manifest = manifest_for(Path(argv[0]))
    except Exception as exc:
        print(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, file=sys.stderr)
        return 1
    print(manifest.model_dump_json(exclude_none=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
