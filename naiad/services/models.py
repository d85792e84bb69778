"""The model registry's use-cases: register a version from a job or an upload, evaluate,
quantize or export it.

A version's files are copied out of the archive into ``models/<name>/<id>/`` of the
artifact store, so a version never changes after registration, even when the job's
output is overwritten or deleted.
"""

import contextlib
import functools
import hashlib
import io
import json
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterator
from typing import IO, Any, cast

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from naiad.core import principals
from naiad.core.errors import Conflict, InvalidInput, NotFound
from naiad.core.ids import new_id
from naiad.core.status import Status
from naiad.data import DATA_TAG
from naiad.schemas.jobs import JobCreate
from naiad.schemas.models import (
    MANIFEST_FILE,
    ONNX,
    TENSORFLOW_FORMATS,
    TF_SAVEDMODEL,
    Evaluation,
    EvaluationCreate,
    Lineage,
    ModelExport,
    ModelManifest,
    ModelQuantize,
    ModelVersionCreate,
)
from naiad.services import jobs as job_service
from naiad.services import model_files
from naiad.store import endpoints, jobs, models, runs, tuning
from naiad.store.artifacts import ArtifactStore, safe_path
from naiad.store.tables import EvaluationRow, JobRow, ModelVersionRow

MAX_MODEL_BYTES = 4 * 1024**3
EVALUATION_FILE = "evaluation.json"
EVALUATION_EXPERIMENT = "evaluations"

JOB_PREFIX = {"evaluate": "eval", "quantize": "quant", "export": "export"}

# The built-in jobs: one line each, run from a source snapshot like any user script.
BUILTIN_SCRIPTS = {
    "evaluate.py": "from naiad.runtime.builtin.evaluate import main\n\nmain()\n",
    "quantize.py": "from naiad.runtime.builtin.quantize import main\n\nmain()\n",
    "export.py": "from naiad.runtime.builtin.export import main\n\nmain()\n",
}


def _manifest(tar: tarfile.TarFile, members: dict[str, tarfile.TarInfo]) -> ModelManifest:
    if MANIFEST_FILE not in members:
        raise InvalidInput(
            f"The model archive has no {MANIFEST_FILE} at its root; save the model with "
            "naiad.runtime.save_model(module, example_input), which writes it."
        )
    handle = tar.extractfile(members[MANIFEST_FILE])
    assert handle is not None
    try:
        manifest = ModelManifest.model_validate_json(handle.read())
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidInput(f"{MANIFEST_FILE} is not valid: {problems}.") from None
    file = safe_path(manifest.file, allow_root=True)
    if manifest.format == TF_SAVEDMODEL:  # a folder: its saved_model.pb is what must be there
        file = f"{file}/saved_model.pb".lstrip("/")
    if file not in members:
        raise InvalidInput(
            f"{MANIFEST_FILE} names the model file {manifest.file!r}, which is not in the archive."
        )
    if manifest.format == "safetensors" and not manifest.architecture:
        raise InvalidInput(
            "A safetensors model needs 'architecture' (module:Class) in its manifest, "
            "so the weights can be loaded without running pickled code."
        )
    return manifest


# Builds the manifest of an archive that has none (a job's), or says why it cannot.
GuessManifest = Callable[[tarfile.TarFile, dict[str, tarfile.TarInfo]], ModelManifest]


@contextlib.contextmanager
def _seekable(stream: IO[bytes]) -> Iterator[IO[bytes]]:
    """The stream, or a local copy of it when it cannot seek (an S3 object's body): tarfile
    lists the members first, then goes back for each file."""
    seekable = getattr(stream, "seekable", None)
    if seekable is not None and seekable():
        yield stream
        return
    with tempfile.SpooledTemporaryFile(max_size=64 * 1024 * 1024) as copy:
        shutil.copyfileobj(stream, copy, 1024 * 1024)
        copy.seek(0)
        yield cast(IO[bytes], copy)


def copy_archive(
    store: ArtifactStore, archive: IO[bytes], prefix: str, guess: GuessManifest | None = None
) -> tuple[ModelManifest, int]:
    """Check a model .tar.gz and copy its files under ``prefix``; returns manifest and size.

    Without a manifest in the archive, ``guess`` makes one, written last beside the files.
    """
    try:
        with tarfile.open(fileobj=archive, mode="r:gz") as tar:
            entries = [m for m in tar.getmembers() if m.isfile()]
            members = {safe_path(m.name.removeprefix("./")): m for m in entries}
            size = sum(m.size for m in entries)
            if size > MAX_MODEL_BYTES:
                raise InvalidInput(f"The model is {size} bytes; the limit is {MAX_MODEL_BYTES}.")
            written = None
            if MANIFEST_FILE not in members and guess is not None:
                manifest = guess(tar, members)
                written = manifest.model_dump_json(indent=2, exclude_none=True).encode()
            else:
                manifest = _manifest(tar, members)
            for rel, member in members.items():
                handle = tar.extractfile(member)
                assert handle is not None
                store.put_stream(f"{prefix}/{rel}", handle)
            if written is not None:
                store.put_bytes(f"{prefix}/{MANIFEST_FILE}", written)
                size += len(written)
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise InvalidInput(f"The model archive is not a readable .tar.gz ({exc}).") from None
    return manifest, size


def _channel_records(tags: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The table channels' records the supervisor put on the run (``naiad.data.*``)."""
    records = {}
    for key, value in tags.items():
        if key.startswith(DATA_TAG):
            with contextlib.suppress(ValueError):
                records[key[len(DATA_TAG) :]] = json.loads(value)
    return records


def _lineage_of_job(session: Session, row: JobRow) -> Lineage:
    run = runs.get(session, row.run_id)
    metrics = {key: summary.value for key, summary in run.metrics.items()}
    trial = tuning.trial_of_job(session, row.id)
    return Lineage(
        job=row.name,
        run_id=row.run_id,
        hyperparameters=row.spec.hyperparameters,
        params=run.params,
        metrics=metrics,
        inputs=row.spec.inputs,
        data=_channel_records(run.tags),
        tuning_job=None if trial is None else trial[1].name,
        trial=None if trial is None else trial[0].number,
    )


def _job_archive(session: Session, store: ArtifactStore, name: str) -> tuple[str, Lineage]:
    row = jobs.get_row(session, name)
    principals.require(row.project, "viewer", f"Registering the model of job {name!r}")
    if row.status != Status.COMPLETED.value:
        raise Conflict(
            f"Training job {name!r} is {row.status}; only a Completed job's model can be "
            "registered (wait for it with `naiad jobs show` or `job.wait()`)."
        )
    path = f"{row.spec.output_uri.strip('/')}/model.tar.gz"
    if not store.exists(path):
        raise NotFound(f"Job {name!r} left no model.tar.gz at {store.uri_for(path)}.")
    return path, _lineage_of_job(session, row)


def register(
    session: Session, store: ArtifactStore, name: str, body: ModelVersionCreate
) -> ModelVersionRow:
    models.check_name(name)
    if (body.job is None) == (body.upload_uri is None):
        raise InvalidInput("Give exactly one of 'job' (a training job's name) or 'upload_uri'.")
    guess: GuessManifest | None = None
    if body.job is not None:
        archive, lineage = _job_archive(session, store, body.job)
        guess = functools.partial(
            model_files.infer_manifest,
            model=name,
            job=body.job,
            input_shape=body.input_shape,
            dtype=body.dtype,
            classes=body.classes,
        )
    else:
        archive, lineage = safe_path(body.upload_uri or ""), Lineage()
        guess = functools.partial(  # a SageMaker model.tar.gz carries no naiad-model.json
            model_files.infer_manifest,
            model=name,
            job=None,
            input_shape=body.input_shape,
            dtype=body.dtype,
            classes=body.classes,
        )
        if not archive.startswith("uploads/models/") or not store.exists(archive):
            raise InvalidInput(
                f"Upload {body.upload_uri!r} was not found; PUT the model archive to "
                "/api/v1/models/uploads first (the SDK and CLI do this for you)."
            )
    if body.derived_from is not None:
        origin = models.resolve(session, body.derived_from)
        origin_name, origin_version = models.version_of(session, origin.id)
        lineage.derived_from = f"{origin_name}:{origin_version}"
    return register_archive(session, store, name, archive, lineage, body.description, guess)


def register_archive(
    session: Session,
    store: ArtifactStore,
    name: str,
    archive: str,
    lineage: Lineage,
    description: str = "",
    guess: GuessManifest | None = None,
    extra: Callable[[str], None] | None = None,
) -> ModelVersionRow:
    """A new version of ``name`` from the .tar.gz at ``archive`` in ``store``; ``extra``
    adds files under the version's prefix before it is recorded (SageMaker's code/)."""
    models.check_name(name)
    prefix = f"models/{name}/{new_id()}"
    with store.open(archive) as body, _seekable(body) as handle:
        manifest, size = copy_archive(store, handle, prefix, guess)
    if extra is not None:
        extra(prefix)
    try:  # no SAVEPOINT: on SQLite releasing one commits at once (see store.db.insert_new)
        return models.create_version(session, name, manifest, size, prefix, lineage, description)
    except IntegrityError:  # the request's transaction is rolled back as this propagates
        raise Conflict(
            f"Another version of {name!r} was registered at the same moment; retry."
        ) from None


def delete(session: Session, name: str) -> None:
    """Delete a model and its versions, unless an endpoint serves (or rolls out) one."""
    serving = endpoints.names_serving(session, name)
    if serving:
        raise Conflict(
            f"Model {name!r} is served by endpoint(s) {', '.join(serving)}; "
            "delete or update them first."
        )
    models.delete_model(session, name)


def _builtin_source(store: ArtifactStore, script: str) -> str:
    """The snapshot holding one built-in entry script, stored once by content hash."""
    body = BUILTIN_SCRIPTS[script].encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(script)
        info.size, info.mtime = len(body), 0
        tar.addfile(info, io.BytesIO(body))
    data = buf.getvalue()
    path = f"sources/{hashlib.sha256(data).hexdigest()}.tar.gz"
    if not store.exists(path):
        store.put_bytes(path, data)
    return path


def builtin_job(
    session: Session,
    store: ArtifactStore,
    slots: int,
    script: str,
    version: ModelVersionRow,
    inputs: dict[str, str],
    hyperparameters: dict[str, str | int | float | bool | None],
) -> JobRow:
    """Submit a built-in job over one version; its ``model`` channel holds the version's files."""
    name, number = models.version_of(session, version.id)
    kind = script.removesuffix(".py")
    body = JobCreate(
        name=f"{JOB_PREFIX[kind]}-{name[:40]}-{number}-{new_id()[:6]}".replace("_", "-"),
        entrypoint=script,
        source_uri=_builtin_source(store, script),
        experiment=EVALUATION_EXPERIMENT if kind == "evaluate" else "models",
        hyperparameters={"model": f"{name}:{number}", **hyperparameters},
        inputs={"model": store.uri_for(version.artifact_uri), **inputs},
    )
    return job_service.submit(session, body, store, slots)


def evaluate(
    session: Session, store: ArtifactStore, slots: int, ref: str, body: EvaluationCreate
) -> EvaluationRow:
    if body.channel == "model":
        raise InvalidInput("The channel 'model' holds the model itself; name the data otherwise.")
    version = models.resolve(session, ref)
    job = builtin_job(
        session,
        store,
        slots,
        "evaluate.py",
        version,
        {body.channel: body.input},
        {"channel": body.channel},
    )
    return models.add_evaluation(session, version, job.id, body.input)


# What each method needs a version to be; refused up front rather than by a failed job.
QUANTIZABLE_FORMATS = {
    "dynamic": ("torchscript", "safetensors"),
    "static": ("torchscript", "torch_export", "safetensors"),
    "qat": ("torchscript", "torch_export", "safetensors"),
}


def _check_quantizable(ref: str, version: ModelVersionRow, body: ModelQuantize) -> None:
    manifest = ModelManifest.model_validate(version.manifest)
    method = body.method
    if manifest.quantization:
        raise Conflict(f"{ref} is already quantized ({manifest.quantization}).")
    if manifest.signature is None:
        raise InvalidInput(
            f"{ref} is a SageMaker model: its inference script decides what it takes, so it "
            "cannot be quantized here. Save the network with naiad.runtime.save_model and "
            "register that."
        )
    formats = QUANTIZABLE_FORMATS[method]
    if manifest.format not in formats:
        origin = Lineage.model_validate(version.lineage).derived_from
        instead = f" (quantize {origin}, which it was made from)" if origin else ""
        raise InvalidInput(
            f"{method} quantization takes {', '.join(formats)} models; {ref} is "
            f"{manifest.format}{instead}."
        )
    training = sorted(body.model_fields_set & {"epochs", "lr", "batch_size"})
    if training and method != "qat":
        raise InvalidInput(
            f"{', '.join(training)} set how QAT fine-tunes; {method} quantization does not "
            "train. Leave them out, or use method qat."
        )
    if method == "dynamic":
        if body.data is not None:
            raise InvalidInput(
                "Dynamic quantization needs no data (activations are quantized on each call); "
                "leave data out, or use method static (calibration) or qat (fine-tuning)."
            )
        return
    if body.data is None:
        what = "calibrate activation ranges on" if method == "static" else "fine-tune on"
        raise InvalidInput(
            f"{method} quantization needs labelled data to {what}: give data (--data PATH "
            "or URI: .npz with x and y, or .csv with a label column)."
        )
    inputs = manifest.signature.inputs
    if inputs.dtype != "float32":
        raise InvalidInput(
            f"{method} quantization quantizes float32 inputs; {ref} takes {inputs.describe()}. "
            "Use method dynamic, which leaves the inputs as they are."
        )


def quantize(
    session: Session,
    store: ArtifactStore,
    slots: int,
    ref: str,
    body: ModelQuantize | None = None,
) -> JobRow:
    """A job writing an int8 copy of a version into its model.tar.gz: dynamic (no data),
    static (activation ranges calibrated on ``data``) or QAT (fine-tuned on ``data``)."""
    body = body or ModelQuantize()
    version = models.resolve(session, ref)
    _check_quantizable(ref, version, body)
    if body.method == "dynamic":
        return builtin_job(session, store, slots, "quantize.py", version, {}, {})
    hyperparameters: dict[str, str | int | float | bool | None] = {"method": body.method}
    if body.method == "qat":
        hyperparameters |= {"epochs": body.epochs, "lr": body.lr, "batch_size": body.batch_size}
    assert body.data is not None
    inputs = {"data": body.data}
    return builtin_job(session, store, slots, "quantize.py", version, inputs, hyperparameters)


def export(
    session: Session, store: ArtifactStore, slots: int, ref: str, body: ModelExport
) -> JobRow:
    """A job writing the version as an ONNX graph into its model.tar.gz; refused up front
    for a version it could not export, with what to export instead."""
    version = models.resolve(session, ref)
    manifest = ModelManifest.model_validate(version.manifest)
    if manifest.signature is None:
        raise InvalidInput(
            f"{ref} is a SageMaker model: its inference script decides what it takes, so no "
            "input shape is known to export it with. Save the network with "
            "naiad.runtime.save_model(module, example_input), whose example gives the shape, "
            "register that, and export it."
        )
    if manifest.format == ONNX:
        raise Conflict(f"{ref} is already an ONNX graph; serve it as it is.")
    if manifest.format in TENSORFLOW_FORMATS:
        raise InvalidInput(
            f"{ref} is a TensorFlow model ({manifest.format}); ONNX export converts torch "
            "networks. Serve it as it is: its replica runs it with TensorFlow."
        )
    if manifest.quantization:
        origin = Lineage.model_validate(version.lineage).derived_from
        raise Conflict(
            f"{ref} is quantized ({manifest.quantization}), and ONNX has no equivalent of "
            f"torch's quantized kernels; export {origin or 'the unquantized version'} instead."
        )
    return builtin_job(session, store, slots, "export.py", version, {}, {"format": body.format})


def evaluation_schema(session: Session, store: ArtifactStore, row: EvaluationRow) -> Evaluation:
    """The job's status and, once it wrote them, its metrics, per-class scores and matrix."""
    job = session.get(JobRow, row.job_id)
    assert job is not None
    name, version = models.version_of(session, row.version_id)
    run = runs.get(session, job.run_id)
    metrics = {
        k: float(s.value) for k, s in run.metrics.items() if isinstance(s.value, int | float)
    }
    details: dict = {}
    path = f"runs/{job.run_id}/artifacts/{EVALUATION_FILE}"
    if job.status == Status.COMPLETED.value and store.exists(path):
        try:
            details = json.loads(store.get_bytes(path))
        except ValueError:
            details = {}
    return Evaluation(
        model=name,
        version=version,
        job=job.name,
        run_id=job.run_id,
        input=row.input,
        status=job.status,
        metrics=metrics,
        confusion_matrix=details.get("confusion_matrix"),
        per_class=details.get("per_class"),
        created_at=row.created_at,
    )
