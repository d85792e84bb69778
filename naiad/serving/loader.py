"""Load a model directory (``naiad-model.json`` + one file) into a callable, in any format.

Nothing is unpickled: TorchScript and ``torch.export`` files are programs, safetensors
files are weights for an architecture the replica imports by name, ONNX files are graphs
ONNX Runtime runs (``onnx_runtime``, imported only for them). A directory that
does not load says why in one sentence, so the controller can show it as the reason.
A ``sagemaker`` directory is the inference toolkit's (``naiad.serving.handler``), not this.
"""

import contextlib
import importlib
import math
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from naiad.core.errors import NaiadError
from naiad.schemas.models import (
    MANIFEST_FILE,
    ONNX,
    SAGEMAKER,
    TENSORFLOW_FORMATS,
    TF_SAVEDMODEL,
    ModelManifest,
    TensorManifest,
    TensorSpec,
)


class ModelLoadError(NaiadError):
    """The model directory cannot be served as it is."""

    code = "model_load_failed"


def first_line(exc: BaseException) -> str:
    """The sentence of an error, without the traceback TorchScript appends to its message."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    text = str(exc)
    line = lines[-1] if "Traceback of TorchScript" in text or "Traceback" in lines[0] else lines[0]
    for prefix in ("RuntimeError: ", "ValueError: "):
        line = line.removeprefix(prefix)
    return line[:500]


@dataclass(frozen=True)
class LoadedModel:
    """A manifest and a network callable on a batch tensor, in inference mode."""

    manifest: TensorManifest
    network: Callable[[Any], Any]
    device: str = "cpu"

    def __call__(self, batch: Any) -> Any:
        """Run one batch (a tensor whose first dimension is the batch) and return a tensor.

        Each torch call lets go of the GIL and must take it back, which on a busy replica
        means waiting for the event loop; so calls that would change nothing (a cast to
        the same dtype, a move to the same device, entering inference mode again) are
        skipped rather than made.
        """
        import torch

        if not torch.is_inference_mode_enabled():
            with torch.inference_mode():
                return self(batch)
        dtype = getattr(torch, self.manifest.signature.inputs.dtype)
        if batch.dtype != dtype or batch.device.type != self.device_type:
            batch = batch.to(device=self.device, dtype=dtype, non_blocking=True)
        out = self.network(batch)
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"the model returned {type(out).__name__}, not one tensor")
        return out if out.device.type == "cpu" else out.cpu()

    @property
    def device_type(self) -> str:
        """``cuda`` for ``cuda:1``: what a tensor's ``device.type`` says."""
        return self.device.split(":", 1)[0]


def read_manifest(directory: Path) -> ModelManifest:
    path = directory / MANIFEST_FILE
    if not path.is_file():
        raise ModelLoadError(
            f"{directory} has no {MANIFEST_FILE}; save the model with "
            "naiad.runtime.save_model(module, example_input), which writes it."
        )
    try:
        return ModelManifest.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        raise _invalid(path, exc) from None


def _invalid(path: Path, exc: ValidationError) -> ModelLoadError:
    problems = "; ".join(
        f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()
    )
    return ModelLoadError(f"{path} is not a valid manifest: {problems}.")


def tensor_manifest(directory: Path, manifest: ModelManifest) -> TensorManifest:
    """The manifest of a model that takes one tensor, or why this one is not such a model."""
    if manifest.format == SAGEMAKER:
        raise ModelLoadError(
            f"{directory} holds a SageMaker model (its inference script decides what it "
            "takes), which only an endpoint serves; evaluation, quantization and export take "
            "models saved with naiad.runtime.save_model."
        )
    try:
        return TensorManifest.model_validate(manifest.model_dump())
    except ValidationError as exc:
        raise _invalid(directory / MANIFEST_FILE, exc) from None


def _architecture(manifest: ModelManifest) -> Any:
    name = manifest.architecture or ""
    module_name, _, qualname = name.partition(":")
    if not module_name or not qualname:
        raise ModelLoadError(
            "A safetensors model needs 'architecture' as module:Class in its manifest; "
            f"got {name!r}."
        )
    try:
        found: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise ModelLoadError(
            f"The architecture {name} cannot be imported ({first_line(exc)}); install the "
            "package that defines it in the replica's environment."
        ) from None
    try:
        return found(**manifest.architecture_kwargs)
    except Exception as exc:
        raise ModelLoadError(
            f"{name}(**{manifest.architecture_kwargs}) failed: {first_line(exc)}."
        ) from None


def _network(
    manifest: ModelManifest, path: Path, device: str, threads: int | None
) -> Callable[[Any], Any]:
    import torch

    if manifest.format == ONNX:
        from naiad.serving.onnx_runtime import load_session

        if device != "cpu":
            raise ModelLoadError(
                f"ONNX models are served by ONNX Runtime on the CPU; serve this one with "
                f"device cpu, or the torch version it was exported from on {device}."
            )
        return load_session(path, threads)
    if manifest.format in TENSORFLOW_FORMATS:
        from naiad.serving.tf_runtime import load_network

        if device != "cpu":
            raise ModelLoadError(
                "TensorFlow models are served on the CPU; serve this one with device cpu."
            )
        return load_network(path, manifest.format, threads)
    if manifest.format == "torchscript":
        with warnings.catch_warnings():  # deprecated in torch 2.13; still loads and runs
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.load(str(path), map_location=device).eval()
    if manifest.format == "torch_export":
        return torch.export.load(str(path)).module().to(device)
    from safetensors.torch import load_model as load_safetensors

    network = _architecture(manifest)
    try:
        load_safetensors(network, str(path), strict=True, device=device)
    except Exception as exc:
        detail = " ".join(line.strip() for line in str(exc).splitlines())[:500]
        raise ModelLoadError(
            f"The weights in {path.name} do not fit {manifest.architecture}: {detail}"
        ) from None
    return network.to(device).eval()


def _example(spec: TensorSpec, rows: int) -> Any:
    import torch

    shape = [rows, *(d if d > 0 else 1 for d in spec.shape[1:])]
    return torch.zeros(shape, dtype=getattr(torch, spec.dtype))


def set_threads(threads: int) -> None:
    """Intra-op threads for the calling thread, and the default for threads started later.

    OpenMP keeps the count per thread: a model thread that never sets it runs a team as
    wide as the machine, and the idle member spins, taking a core from the event loop.
    Call this on the thread that runs the model.
    """
    import os

    os.environ["OMP_NUM_THREADS"] = str(threads)  # read by OpenMP if torch is not loaded yet
    import torch

    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # already set, or parallel work has started
        torch.set_num_interop_threads(threads)


@contextlib.contextmanager
def model_thread_context(threads: int) -> Iterator[None]:
    """Held by the thread that runs every batch for its whole life: its torch thread
    count, and inference mode entered once rather than per batch."""
    import torch

    set_threads(threads)
    with torch.inference_mode():
        yield


def choose_cpu_kernels(model: LoadedModel, max_batch: int) -> str:
    """Keep oneDNN convolutions or use torch's native ones, whichever costs this model less.

    oneDNN pays a fixed cost per call that a small network (the 8x8 digits CNN) never
    earns back at the batch sizes a replica sees: there the native kernels take half the
    CPU. Big networks are the other way round. So both are timed (thread CPU time, which
    other processes do not inflate) on a few batch sizes, and the cheaper one is kept; a
    model slower than 20 ms a call keeps the default without the wait. An ONNX model runs
    on ONNX Runtime's own kernels, a TensorFlow model on TensorFlow's: nothing to choose.
    """
    import torch

    if model.manifest.format == ONNX:
        return "onnxruntime"
    if model.manifest.format in TENSORFLOW_FORMATS:
        return "tensorflow"
    if model.device != "cpu" or not torch.backends.mkldnn.is_available():
        return "default"
    examples = [_example(model.manifest.signature.inputs, min(r, max_batch)) for r in (2, 8, 32)]
    _use_onednn(True)

    def cost() -> float:
        total = 0.0
        for x in examples:
            model(x)  # the first call after a switch may compile or allocate
            best = math.inf
            for _ in range(3):
                start = time.thread_time()
                for _ in range(5):
                    model(x)
                best = min(best, (time.thread_time() - start) / 5)
            total += best
        return total

    onednn = cost()
    if onednn > 0.02 * len(examples):
        return "onednn"
    _use_onednn(False)
    native = cost()
    if native < 0.9 * onednn:
        return "native"
    _use_onednn(True)
    return "onednn"


def _use_onednn(on: bool) -> None:
    import torch

    # torch's stubs type the module's flag as its descriptor, not the bool it takes.
    torch.backends.mkldnn.enabled = on  # type: ignore[assignment]


def load_model(
    directory: str | Path, *, threads: int | None = None, device: str = "cpu"
) -> LoadedModel:
    """Load and warm the model in ``directory``: the first request pays no compile cost.

    The warm-up runs zeros of the signature's shape, so a file that does not take the
    inputs its manifest promises fails here, at load, not on a user's request.
    """
    directory = Path(directory)
    manifest = tensor_manifest(directory, read_manifest(directory))
    if threads is not None:
        set_threads(threads)
    path = directory / manifest.file
    if not (path.is_dir() if manifest.format == TF_SAVEDMODEL else path.is_file()):
        raise ModelLoadError(
            f"{MANIFEST_FILE} names {manifest.file!r}, which is not in {directory}."
        )
    try:
        network = _network(manifest, path, device, threads)
    except NaiadError:
        raise
    except Exception as exc:
        runtimes = {ONNX: "ONNX Runtime", **dict.fromkeys(TENSORFLOW_FORMATS, "TensorFlow")}
        runtime = runtimes.get(manifest.format, "this torch")
        raise ModelLoadError(
            f"{manifest.file} is not a {manifest.format} model {runtime} can load "
            f"({first_line(exc)})."
        ) from None
    model = LoadedModel(manifest=manifest, network=network, device=device)
    inputs = manifest.signature.inputs
    for rows in (1, 2, 1):  # TorchScript's profiling executor optimizes on the second call
        try:
            out = model(_example(inputs, rows))
        except Exception as exc:
            raise ModelLoadError(
                f"The model fails on inputs {inputs.describe()} that its manifest promises: "
                f"{first_line(exc)}."
            ) from None
        if out.dim() == 0 or out.shape[0] != rows:
            raise ModelLoadError(
                f"The model returned shape {list(out.shape)} for {rows} input row(s); it must "
                "return one output row per input row."
            )
    return model
