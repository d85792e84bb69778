"""What a job's ``model.tar.gz`` holds when the script did not write ``naiad-model.json``.

A SageMaker-style script saves into ``SM_MODEL_DIR`` whatever it likes, most often
``model.pth``. Served without unpickling, that can be a TorchScript file or a
``torch.export`` program; a ``torch.save`` pickle (a state_dict, or a whole pickled
module) needs the network's class and unpickling, so it is refused with what to do.
Files are told apart by their contents (the zip entries each format writes), never by
loading them, so the server needs no torch for this.
"""

import json
import tarfile
import zipfile
from typing import IO, Literal

from naiad.core.errors import InvalidInput
from naiad.schemas.models import ModelManifest, Signature, TensorSpec

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
    job: str,
    input_shape: list[int] | None,
    dtype: str | None,
    classes: list[str] | None,
) -> ModelManifest:
    """The manifest for the one servable file among ``members``, or a sentence saying why not."""
    found: dict[str, Kind] = {}
    for rel, member in members.items():
        if not rel.lower().endswith(MODEL_SUFFIXES):
            continue
        handle = tar.extractfile(member)
        assert handle is not None
        found[rel] = _kind(rel, handle)
    servable = {rel: kind for rel, kind in found.items() if kind in ("torchscript", "torch_export")}
    where = f"Job {job!r} saved no naiad-model.json"
    if len(servable) > 1:
        raise InvalidInput(
            f"{where} and its model directory has several models ({', '.join(sorted(servable))}); "
            f"keep one, or {SAVE_HINT}."
        )
    if not servable:
        pickled = sorted(rel for rel, kind in found.items() if kind == "torch_save")
        if pickled:
            raise InvalidInput(
                f"{where}, and {pickled[0]} was written by torch.save (a state_dict or a "
                "pickled module): serving it would need the network's class and unpickling "
                f"code. To register it, {SAVE_HINT}."
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
            f"has: {have}); {SAVE_HINT}."
        )
    ((rel, kind),) = servable.items()
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
        raise InvalidInput(
            f"{where}; its {rel} is {what}, which does not say what input it takes: give "
            f"its input shape, e.g. `naiad models register {model} --job {job} --input-shape "
            "-1,1,8,8` (-1 for the batch; --dtype if not float32), or save it with "
            "naiad.runtime.save_model(model, example_input), which records it."
        )
    return ModelManifest(
        format=kind,
        file=rel,
        signature=Signature(inputs=inputs),
        classes=classes,
    )
