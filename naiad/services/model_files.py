"""What a model archive holds when it has no ``naiad-model.json``: a job's ``model.tar.gz``
whose script did not write one, or an uploaded SageMaker ``model.tar.gz``.

An archive with an inference script, ``code/inference.py`` (or ``code/<SAGEMAKER_PROGRAM>``),
is a SageMaker model, format ``sagemaker``: the replica runs that script's ``model_fn``,
``input_fn``, ``predict_fn`` and ``output_fn`` (the PyTorch inference toolkit's contract),
so its model files may be anything the script loads. Without a script, a SageMaker-style
job saves into ``SM_MODEL_DIR`` whatever it likes, most often ``model.pth``. Served without
unpickling, that can be a TorchScript file or a ``torch.export`` program; a ``torch.save``
pickle (a state_dict, or a whole pickled module) needs the network's class and unpickling,
so it is refused with what to do. An uploaded archive (``job`` None) with one TorchScript
file and no input shape is a SageMaker model served by the toolkit's default handlers.
Files are told apart by their contents (the zip entries each format writes), never by
loading them, so the server needs no torch for this.
"""

import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Container
from pathlib import Path
from typing import IO, Literal

from naiad.core.errors import InvalidInput
from naiad.schemas.models import MANIFEST_FILE, ModelManifest, Signature, TensorSpec

Kind = Literal["torchscript", "torch_export", "torch_save", "safetensors", "other"]

MODEL_SUFFIXES = (".pt", ".pth", ".pt2", ".ts", ".jit", ".torchscript", ".safetensors", ".bin")
# torch/_export/serde/schema.py ScalarType -> the dtypes a signature can name.
EXPORT_DTYPES = {
    1: "uint8",
    4: "int32",
    5: "int64",
    6: "float16",
    7: "float32",
    8: "float64",
    12: "bool",
    13: "bfloat16",
}
SAVE_HINT = (
    "save the network with naiad.runtime.save_model(model, example_input), or as "
    "TorchScript: torch.jit.script(model).save(os.path.join(os.environ['SM_MODEL_DIR'], "
    "'model.pt')), and run the job again"
)
UPLOAD_HINT = (
    "add the naiad-model.json that naiad.runtime.save_model(model, example_input) writes, "
    "save the network as TorchScript (torch.jit.script(model).save('model.pt')), or add "
    "code/inference.py with a model_fn(model_dir) that loads it"
)
DESCRIBE_TIMEOUT_S = 120  # a TensorFlow model loaded once to read its signature
# A SageMaker model archive's inference script: code/$SAGEMAKER_PROGRAM, else this one.
CODE_DIR = "code"
DEFAULT_PROGRAM = "inference.py"


def script_path(program: str) -> str:
    """``code/serve.py`` for SAGEMAKER_PROGRAM ``serve.py`` (or ``serve``), or a 400 saying why
    the name cannot be a script of the archive's code/ folder."""
    name = program.strip().removesuffix(".py")
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise InvalidInput(
            f"SAGEMAKER_PROGRAM {program!r} must name a script in the model's code/ folder, "
            f"such as {DEFAULT_PROGRAM}."
        )
    return f"{CODE_DIR}/{name}.py"


def sagemaker_script(members: Container[str], program: str | None = None) -> str | None:
    """The archive's inference script (``code/<name>.py``) when it has one, else None.

    ``program`` is the script's name as SageMaker's ``SAGEMAKER_PROGRAM`` gives it
    (``serve.py`` or ``serve``), passed in by whoever read the model's environment;
    ``code/inference.py``, the toolkit's default, is the fallback either way.
    """
    named = (program or "").strip()
    candidates = [script_path(named)] if named else []
    candidates.append(f"{CODE_DIR}/{DEFAULT_PROGRAM}")
    return next((path for path in candidates if path in members), None)


def infer_sagemaker_manifest(
    tar: tarfile.TarFile,
    members: dict[str, tarfile.TarInfo],
    program: str = DEFAULT_PROGRAM,
    classes: list[str] | None = None,
) -> ModelManifest:
    """The manifest of a SageMaker model archive whose environment names its script.

    ``file`` is ``code/<program>`` even when the archive lacks it (its code may be added
    beside the files, from ``SAGEMAKER_SUBMIT_DIRECTORY``): a replica that finds no such
    script serves the model with the toolkit's default handlers, as SageMaker does.
    """
    del tar  # the GuessManifest shape; nothing needs to be read
    return ModelManifest(
        format="sagemaker", file=script_path(program), signature=None, classes=classes
    )


def infer_tensorflow_manifest(
    tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo]
) -> ModelManifest:
    """The manifest of a TensorFlow image's archive (a ``.keras`` file, or TF Serving's
    ``1/saved_model.pb`` + ``variables/``), or a sentence saying why there is none.

    Its signature needs TensorFlow to read, which the server never imports: a process of
    its own (``naiad.serving.tf_runtime``) loads the model once and says what it takes.
    The TensorFlow Serving container's ``code/inference.py`` handlers are not run here.
    """
    handlers = sorted(rel for rel in members if rel.startswith(f"{CODE_DIR}/"))
    if handlers:
        raise InvalidInput(
            f"The TensorFlow model archive has {handlers[0]}: Naiad does not run the "
            "TensorFlow Serving container's input_handler/output_handler. Leave code/ out; "
            'the endpoint takes {"instances": [...]} and answers {"predictions": [...]} '
            "as TensorFlow Serving does."
        )
    with tempfile.TemporaryDirectory(prefix="naiad-tf-") as tmp:
        for rel, member in members.items():
            handle = tar.extractfile(member)
            assert handle is not None
            target = Path(tmp, rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as out:
                shutil.copyfileobj(handle, out)
        cmd = [sys.executable, "-m", "naiad.serving.tf_runtime", tmp]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=DESCRIBE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            why = f"loading it took over {DESCRIBE_TIMEOUT_S} s"
        else:
            if done.returncode == 0:
                return ModelManifest.model_validate_json(done.stdout.strip().splitlines()[-1])
            lines = done.stderr.strip().splitlines()
            why = lines[-1] if lines else f"exit code {done.returncode}"
    raise InvalidInput(
        f"The TensorFlow model archive has no {MANIFEST_FILE}, and its model could not be "
        f"described: {why}."
    )


def _kind(name: str, handle: IO[bytes]) -> Kind:
    if name.endswith(".safetensors"):
        return "safetensors"
    head = handle.read(4)
    handle.seek(0)
    if head[:1] == b"\x80":  # a pickle: torch.save's legacy format
        return "torch_save"
    if head != b"PK\x03\x04":
        return "other"
    try:
        entries = zipfile.ZipFile(handle).namelist()
    except (zipfile.BadZipFile, OSError, EOFError):
        return "other"
    inner = {entry.split("/", 1)[-1] for entry in entries}
    if "archive_format" in inner or any(e.startswith("models/") for e in inner):
        return "torch_export"
    if "constants.pkl" in inner and any(e.startswith("code/") for e in inner):
        return "torchscript"
    if "data.pkl" in inner:
        return "torch_save"
    return "other"


def _export_signature(handle: IO[bytes]) -> TensorSpec | None:
    """The input of a program exported with a dynamic batch, read from its JSON graph."""
    try:
        archive = zipfile.ZipFile(handle)
        model_json = next(
            e for e in archive.namelist() if e.split("/", 1)[-1].startswith("models/")
        )
        graph = json.loads(archive.read(model_json))["graph_module"]
        inputs = [
            spec["user_input"]["arg"]["as_tensor"]["name"]
            for spec in graph["signature"]["input_specs"]
            if "user_input" in spec
        ]
        if len(inputs) != 1:
            return None
        meta = graph["graph"]["tensor_values"][inputs[0]]
        shape = [size.get("as_int", -1) for size in meta["sizes"]]
        dtype = EXPORT_DTYPES.get(meta["dtype"])
    except (zipfile.BadZipFile, StopIteration, KeyError, TypeError, ValueError, OSError):
        return None
    if dtype is None or not shape:
        return None
    return TensorSpec(shape=shape, dtype=dtype)  # type: ignore[arg-type]


def infer_manifest(
    tar: tarfile.TarFile,
    members: dict[str, tarfile.TarInfo],
    model: str,
    job: str | None,
    input_shape: list[int] | None,
    dtype: str | None,
    classes: list[str] | None,
    program: str | None = None,
) -> ModelManifest:
    """The manifest of an archive without one, or a sentence saying why it cannot be served.

    ``job`` names the training job that wrote the archive, or is None for an uploaded
    archive; ``program`` is the inference script's name (see :func:`sagemaker_script`).
    """
    script = sagemaker_script(members, program)
    if script is not None:
        return infer_sagemaker_manifest(tar, members, script.split("/", 1)[1], classes)
    if job is None:
        where, hint = f"The model archive has no {MANIFEST_FILE}", UPLOAD_HINT
    else:
        where, hint = f"Job {job!r} saved no {MANIFEST_FILE}", SAVE_HINT
    tensorflow = sorted(
        rel for rel in members if rel.endswith(".keras") or rel.endswith("saved_model.pb")
    )
    if tensorflow:
        raise InvalidInput(
            f"{where}, and {tensorflow[0]} is a TensorFlow model: a TensorFlow job (its "
            "entrypoint imports tensorflow or keras, or framework='tensorflow') describes the "
            f"one model it leaves in SM_MODEL_DIR in {MANIFEST_FILE}; its log says why it did "
            "not (docs/frameworks.md)."
        )
    found: dict[str, Kind] = {}
    for rel, member in members.items():
        if not rel.lower().endswith(MODEL_SUFFIXES):
            continue
        handle = tar.extractfile(member)
        assert handle is not None
        found[rel] = _kind(rel, handle)
    servable = {rel: kind for rel, kind in found.items() if kind in ("torchscript", "torch_export")}
    if len(servable) > 1:
        raise InvalidInput(
            f"{where} and its model directory has several models ({', '.join(sorted(servable))}); "
            f"keep one, or {hint}."
        )
    if not servable:
        pickled = sorted(rel for rel, kind in found.items() if kind == "torch_save")
        if pickled:
            raise InvalidInput(
                f"{where}, and {pickled[0]} was written by torch.save (a state_dict or a "
                "pickled module): serving it would need the network's class and unpickling "
                f"code. To register it, {hint}."
            )
        if any(kind == "safetensors" for kind in found.values()):
            raise InvalidInput(
                f"{where}, and safetensors weights need the class that builds the network; "
                "save with naiad.runtime.save_model(model, example_input, "
                "format='safetensors'), which records it, and run the job again."
            )
        have = ", ".join(sorted(members)[:8]) or "nothing"
        raise InvalidInput(
            f"{where} and its model directory has no TorchScript or torch.export file (it "
            f"has: {have}); {hint}."
        )
    ((rel, kind),) = servable.items()
    if job is None and kind == "torchscript" and not input_shape:
        # A SageMaker model.tar.gz of a lone TorchScript file: the toolkit's default handlers
        # serve it as it is, whatever input it takes.
        return ModelManifest(format="sagemaker", file=rel, signature=None, classes=classes)
    inputs = None
    if input_shape:
        inputs = TensorSpec(shape=input_shape, dtype=dtype or "float32")  # type: ignore[arg-type]
    elif kind == "torch_export":
        handle = tar.extractfile(members[rel])
        assert handle is not None
        inputs = _export_signature(handle)
        if inputs is not None and inputs.shape[0] != -1:
            raise InvalidInput(
                f"{rel} was exported for batches of exactly {inputs.shape[0]}; export it with "
                "dynamic_shapes=({0: torch.export.Dim('batch')},) so it serves any batch, or "
                "save it with naiad.runtime.save_model(model, example_input)."
            )
        if inputs is not None and dtype:
            inputs = TensorSpec(shape=inputs.shape, dtype=dtype)  # type: ignore[arg-type]
    if inputs is None:
        what = "TorchScript" if kind == "torchscript" else "a torch.export program"
        source = f"--job {job}" if job is not None else "PATH"
        raise InvalidInput(
            f"{where}; its {rel} is {what}, which does not say what input it takes: give "
            f"its input shape, e.g. `naiad models register {model} {source} --input-shape "
            "-1,1,8,8` (-1 for the batch; --dtype if not float32), or save it with "
            "naiad.runtime.save_model(model, example_input), which records it."
        )
    return ModelManifest(format=kind, file=rel, signature=Signature(inputs=inputs), classes=classes)
