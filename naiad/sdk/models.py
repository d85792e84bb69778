"""client.models and client.evaluations: register versions, move aliases, evaluate, quantize,
export."""

from __future__ import annotations

import builtins
import io
import tarfile
import time
from pathlib import Path

from naiad.core.errors import InvalidInput
from naiad.core.refs import version_segment
from naiad.core.status import Status
from naiad.schemas.jobs import SourceUploaded
from naiad.schemas.models import (
    MANIFEST_FILE,
    Evaluation,
    Model,
    ModelManifest,
    ModelVersion,
    Signature,
    TensorSpec,
)
from naiad.sdk.http import Transport
from naiad.sdk.jobs import TrainingJobs, to_uri

# A single model file's format, by suffix, when it comes without a manifest.
FORMATS = {".pt": "torchscript", ".ts": "torchscript", ".pt2": "torch_export"}


def _path(ref: str) -> str:
    name, segment = version_segment(ref)
    return f"/models/{name}/versions/{segment}"


def pack_model(
    path: str | Path,
    input_shape: list[int] | None = None,
    dtype: str = "float32",
    classes: list[str] | None = None,
) -> bytes:
    """A model directory (with its naiad-model.json) or one model file, as .tar.gz.

    A lone TorchScript (.pt, .ts) or torch.export (.pt2) file needs ``input_shape`` for
    its signature, since neither format records what input it expects.
    """
    source = Path(path).expanduser()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        if source.is_dir():
            if not (source / MANIFEST_FILE).is_file():
                raise InvalidInput(
                    f"{source} has no {MANIFEST_FILE}; save the model with "
                    "naiad.runtime.save_model, or pass the model file itself with its input shape."
                )
            for item in sorted(p for p in source.rglob("*") if p.is_file()):
                tar.add(item, arcname=item.relative_to(source).as_posix())
        elif source.is_file():
            fmt = FORMATS.get(source.suffix)
            if fmt is None:
                raise InvalidInput(
                    f"{source.name}: a single model file must be TorchScript (.pt, .ts) or "
                    "torch.export (.pt2); for safetensors register a directory with a manifest."
                )
            if not input_shape:
                raise InvalidInput(
                    f"Registering {source.name} needs its input shape (e.g. -1,1,8,8 with -1 "
                    "for the batch), since the file does not record it."
                )
            manifest = ModelManifest(
                format=fmt,  # type: ignore[arg-type]
                file=source.name,
                signature=Signature(inputs=TensorSpec(shape=input_shape, dtype=dtype)),  # type: ignore[arg-type]
                classes=classes,
            )
            tar.add(source, arcname=source.name)
            body = manifest.model_dump_json(indent=2, exclude_none=True).encode()
            info = tarfile.TarInfo(MANIFEST_FILE)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
        else:
            raise InvalidInput(f"{source} does not exist.")
    return buffer.getvalue()


class Evaluations:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def list(self, ref: str) -> list[Evaluation]:
        items = self._t.request("GET", f"{_path(ref)}/evaluations")
        return [Evaluation.model_validate(e) for e in items]

    def create(self, ref: str, input: str, channel: str = "test") -> Evaluation:
        body = {"input": to_uri(input), "channel": channel}
        return Evaluation.model_validate(
            self._t.request("POST", f"{_path(ref)}/evaluations", json=body)
        )

    def wait(self, evaluation: Evaluation, timeout: float | None = None) -> Evaluation:
        """Poll until the evaluation job ends; returns it with its metrics."""
        deadline = None if timeout is None else time.monotonic() + timeout
        ref = f"{evaluation.model}:{evaluation.version}"
        while True:
            current = next(e for e in self.list(ref) if e.job == evaluation.job)
            if Status(current.status).terminal:
                return current
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"Evaluation {evaluation.job} is still {current.status}.")
            time.sleep(0.5)


class Models:
    def __init__(self, transport: Transport, jobs: TrainingJobs) -> None:
        self._t = transport
        self._jobs = jobs
        self._evaluations = Evaluations(transport)

    def upload(
        self,
        path: str | Path,
        input_shape: list[int] | None = None,
        dtype: str = "float32",
        classes: list[str] | None = None,
    ) -> SourceUploaded:
        """Send a model directory or file (see ``pack_model``) for a later registration."""
        packed = pack_model(path, input_shape, dtype, classes)
        body = self._t.request("PUT", "/models/uploads", content=packed, timeout=600)
        return SourceUploaded.model_validate(body)

    def register(
        self,
        name: str,
        job: str | None = None,
        path: str | Path | None = None,
        description: str = "",
        derived_from: str | None = None,
        input_shape: list[int] | None = None,
        dtype: str | None = None,
        classes: list[str] | None = None,
    ) -> ModelVersion:
        """The next version of ``name`` from a Completed job's model, or a local model path.

        ``input_shape`` (``[-1, 1, 8, 8]``, -1 for the batch), ``dtype`` (float32 unless
        told) and ``classes`` describe a model saved without ``naiad-model.json``: a lone
        TorchScript or torch.export file, or one in a SageMaker-style job's model directory.
        """
        if (job is None) == (path is None):
            raise InvalidInput("Register from exactly one of job=NAME or path=PATH.")
        body: dict[str, object] = {"description": description, "derived_from": derived_from}
        if job is not None:
            body["job"] = job
            extra = {"input_shape": input_shape, "dtype": dtype, "classes": classes}
            body.update({k: v for k, v in extra.items() if v is not None})
        else:
            assert path is not None
            uploaded = self.upload(path, input_shape, dtype or "float32", classes)
            body["upload_uri"] = uploaded.source_uri
        return ModelVersion.model_validate(
            self._t.request("POST", f"/models/{name}/versions", json=body)
        )

    def get(self, ref: str) -> ModelVersion:
        """``digits`` (latest), ``digits:3`` or ``digits@production``."""
        return ModelVersion.model_validate(self._t.request("GET", _path(ref)))

    def get_model(self, name: str) -> Model:
        return Model.model_validate(self._t.request("GET", f"/models/{name}"))

    def list(self, created_by: str | None = None) -> list[Model]:
        params = {"created_by": created_by} if created_by else None
        return [Model.model_validate(m) for m in self._t.request("GET", "/models", params=params)]

    def versions(self, name: str) -> builtins.list[ModelVersion]:
        items = self._t.request("GET", f"/models/{name}/versions")
        return [ModelVersion.model_validate(v) for v in items]

    def set_alias(self, name: str, alias: str, version: int) -> ModelVersion:
        body = {"version": version}
        return ModelVersion.model_validate(
            self._t.request("PUT", f"/models/{name}/aliases/{alias}", json=body)
        )

    def delete_alias(self, name: str, alias: str) -> None:
        self._t.request("DELETE", f"/models/{name}/aliases/{alias}")

    def delete(self, name: str) -> None:
        self._t.request("DELETE", f"/models/{name}")

    def evaluate(
        self, ref: str, input: str, channel: str = "test", wait: bool = True
    ) -> Evaluation:
        """Run an evaluation job of ``ref`` over the labelled data at ``input``."""
        evaluation = self._evaluations.create(ref, input, channel)
        return self._evaluations.wait(evaluation) if wait else evaluation

    def quantize(
        self,
        ref: str,
        method: str = "dynamic",
        data: str | Path | None = None,
        epochs: int | None = None,
        lr: float | None = None,
        batch_size: int | None = None,
        evaluate: bool = True,
    ) -> ModelVersion:
        """An int8 copy of ``ref``: a job makes it, it becomes the next version, and it is
        evaluated on the data the original's latest evaluation used.

        ``method``: ``dynamic`` (int8 Linear weights, no data), ``static`` (activation
        ranges calibrated on ``data``) or ``qat`` (fine-tuned on ``data`` with fake
        quantization for ``epochs`` at ``lr``, then converted). ``data`` is a local path or
        URI of labelled rows: .npz with x and y, or .csv with a label column.
        """
        body: dict[str, object] = {"method": method}
        if data is not None:
            body["data"] = to_uri(str(data))
        extra = {"epochs": epochs, "lr": lr, "batch_size": batch_size}
        body.update({k: v for k, v in extra.items() if v is not None})
        what = {"dynamic": "dynamic int8 copy", "static": "static int8 copy"}.get(
            method, "QAT int8 copy" if method == "qat" else f"{method} int8 copy"
        )
        return self._derive(ref, "quantize", body, what, evaluate)

    def export(self, ref: str, format: str = "onnx", evaluate: bool = True) -> ModelVersion:
        """The version as an ONNX graph (served by ONNX Runtime): a job exports it, it becomes
        the next version, and it is evaluated on the data the original's latest evaluation
        used."""
        return self._derive(ref, "export", {"format": format}, f"{format.upper()} export", evaluate)

    def _derive(
        self, ref: str, operation: str, body: dict[str, object] | None, what: str, evaluate: bool
    ) -> ModelVersion:
        """Run the job that makes a copy of ``ref``, register its model as the next version
        with ``derived_from``, and evaluate it as the original was last evaluated."""
        origin = self.get(ref)
        origin_ref = f"{origin.name}:{origin.version}"
        started = self._t.request(
            "POST", f"/models/{origin.name}/versions/{origin.version}/{operation}", json=body
        )
        ended = self._jobs.get(started["name"]).wait()
        if ended.status != "Completed":
            raise InvalidInput(f"The {what} of {origin_ref} failed: {ended.status_reason}")
        version = self.register(
            origin.name,
            job=ended.name,
            derived_from=origin_ref,
            description=f"{what} of {origin_ref}",
        )
        past = self._evaluations.list(origin_ref)
        if evaluate and past:
            self.evaluate(f"{version.name}:{version.version}", past[-1].input)
        return version
