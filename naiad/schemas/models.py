"""Model registry wire models, and the manifest every saved model directory carries.

A model directory is what a version stores and what an endpoint replica loads:
``naiad-model.json`` (a :class:`ModelManifest`) next to one model file. Naiad's own formats
load without unpickling arbitrary code: TorchScript, ``torch.export`` programs,
safetensors weights for an architecture named as ``module:Class``, ONNX graphs (an
export of a version, served by ONNX Runtime), or TensorFlow's: a Keras ``.keras`` file or
a SavedModel folder (served by TensorFlow, the ``tensorflow`` extra). The ``sagemaker``
format is a SageMaker model archive served by the PyTorch inference-toolkit contract:
``file`` names its ``code/inference.py`` (the user's own code, run by the replica like a
training script runs a job) or, without a script, the TorchScript file the default
handlers load; it needs no signature.
"""

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from naiad.schemas.common import ParamValue, Timestamp, Wire

MANIFEST_FILE = "naiad-model.json"

ModelFormat = Literal[
    "torchscript", "torch_export", "safetensors", "onnx", "keras", "tf_savedmodel", "sagemaker"
]
SAGEMAKER: ModelFormat = "sagemaker"
ONNX: ModelFormat = "onnx"
# TensorFlow's: a Keras file (model.keras), or a SavedModel folder (``file`` names it)
KERAS: ModelFormat = "keras"
TF_SAVEDMODEL: ModelFormat = "tf_savedmodel"
TENSORFLOW_FORMATS: tuple[ModelFormat, ...] = (KERAS, TF_SAVEDMODEL)
ExportFormat = Literal["onnx"]
QuantizationMethod = Literal["dynamic", "static", "qat"]
DType = Literal["float32", "float64", "float16", "bfloat16", "int64", "int32", "uint8", "bool"]


class TensorSpec(BaseModel):
    """One tensor's shape (-1 for any size, the batch dimension first) and dtype."""

    shape: list[int] = Field(min_length=1, description="e.g. [-1, 1, 8, 8]; -1 for any size.")
    dtype: DType = "float32"

    def describe(self) -> str:
        dims = ", ".join(
            "N" if i == 0 and d == -1 else ("*" if d == -1 else str(d))
            for i, d in enumerate(self.shape)
        )
        return f"{self.dtype}[{dims}]"


class Signature(BaseModel):
    inputs: TensorSpec
    outputs: TensorSpec | None = None


class ModelManifest(Wire):
    """``naiad-model.json``: how to load the model file and what it takes."""

    format: ModelFormat
    file: str = Field(
        description="The model file, relative to the directory; for sagemaker, its inference "
        "script (code/inference.py) or, without one, the TorchScript file."
    )
    signature: Signature | None = Field(
        description="What the model takes; required for every format but sagemaker."
    )
    classes: list[str] | None = Field(default=None, description="Label of each output index.")
    architecture: str | None = Field(
        default=None, description="module:Class building the network (safetensors only)."
    )
    architecture_kwargs: dict[str, ParamValue] = Field(default_factory=dict)
    quantization: str | None = Field(default=None, description="e.g. dynamic-int8.")

    @model_validator(mode="before")
    @classmethod
    def _signature_only_for_tensor_formats(cls, data: Any) -> Any:
        """A sagemaker manifest may leave ``signature`` out; any other format still gets
        pydantic's own "Field required" for it (``null`` included)."""
        if not isinstance(data, dict) or "format" not in data:
            return data
        if data["format"] == SAGEMAKER:
            return data if "signature" in data else {**data, "signature": None}
        if "signature" in data and data["signature"] is None:
            return {k: v for k, v in data.items() if k != "signature"}
        return data


class TensorManifest(ModelManifest):
    """A manifest of a model that takes one tensor (every format but sagemaker): what
    :func:`naiad.serving.loader.load_model` returns with the network."""

    signature: Signature


class Lineage(BaseModel):
    """Where a version came from: the job and run that made it, and what they were fed."""

    job: str | None = None
    run_id: str | None = None
    hyperparameters: dict[str, ParamValue] = Field(default_factory=dict)
    params: dict[str, ParamValue] = Field(
        default_factory=dict,
        description="What the run logged as params: its hyperparameters and what the "
        "script recorded itself (a base checkpoint's sha256, say).",
    )
    metrics: dict[str, float | str] = Field(default_factory=dict, description="Final values.")
    inputs: dict[str, str] = Field(default_factory=dict)
    data: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="What each table channel held when the job read it: source, mode, rows, "
        "columns, fingerprint (from the run's naiad.data.<channel> tags).",
    )
    tuning_job: str | None = Field(default=None, description="The search the job was a trial of.")
    trial: int | None = Field(default=None, description="Its trial number in that search.")
    derived_from: str | None = Field(
        default=None, description="e.g. digits:1, when quantized or exported."
    )


class ModelVersionCreate(Wire):
    """Register from a finished job's model.tar.gz, or from an uploaded model directory."""

    job: str | None = Field(default=None, description="A Completed training job's name.")
    upload_uri: str | None = Field(default=None, description="What PUT /models/uploads answered.")
    description: str = Field(default="", max_length=2000)
    derived_from: str | None = Field(default=None, description="NAME:VERSION this was made from.")
    # For a job whose model directory has a TorchScript or torch.export file but no
    # naiad-model.json (a SageMaker-style script): what the manifest would have said.
    input_shape: list[int] | None = Field(
        default=None, min_length=1, description="e.g. [-1, 1, 8, 8]; -1 for the batch."
    )
    dtype: DType | None = Field(default=None, description="The input's dtype (float32 if unset).")
    classes: list[str] | None = Field(default=None, description="Label of each output index.")


class ModelVersion(BaseModel):
    name: str
    version: int
    format: ModelFormat
    signature: Signature | None = Field(
        default=None, description="None for a sagemaker model: its script decodes the input."
    )
    classes: list[str] | None = None
    quantization: str | None = None
    size_bytes: int
    artifact_uri: str = Field(description="The directory holding naiad-model.json.")
    lineage: Lineage
    aliases: list[str] = Field(default_factory=list)
    description: str = ""
    created_at: Timestamp


class Model(BaseModel):
    name: str
    latest_version: int
    aliases: dict[str, int] = Field(default_factory=dict)
    created_at: Timestamp
    created_by: str | None = Field(
        default=None, description="Its creator: a user, or admin (None: made before users existed)."
    )
    project: str = Field(default="default", description="The project it belongs to.")


class AliasSet(Wire):
    version: int = Field(ge=1)


class ModelExport(Wire):
    """Export a version to another runtime's format, as the next version of its model."""

    format: ExportFormat = Field(description="onnx: a graph ONNX Runtime serves.")


class ModelQuantize(Wire):
    """Quantize a version to int8, as the next version of its model (all fields optional:
    no body is today's dynamic quantization)."""

    method: QuantizationMethod = Field(
        default="dynamic",
        description="dynamic: int8 Linear weights, activations quantized per call, no data; "
        "static: int8 weights and activations, ranges calibrated on 'data'; "
        "qat: fine-tuned on 'data' with fake quantization, then converted to int8.",
    )
    data: str | None = Field(
        default=None,
        description="A channel URI (file:// or s3://) of labelled data (.npz with x/y, or .csv "
        "with a label column): calibration rows for static, training data for qat.",
    )
    epochs: int = Field(default=3, ge=1, le=100, description="qat: epochs of fine-tuning.")
    lr: float = Field(default=1e-4, gt=0, le=1, description="qat: Adam's learning rate.")
    batch_size: int = Field(default=32, ge=1, le=4096, description="qat: rows per step.")


class EvaluationCreate(Wire):
    input: str = Field(description="A channel URI (file:// or s3://) holding the labelled data.")
    channel: str = Field(default="test", min_length=1, max_length=63)


class Evaluation(BaseModel):
    """An evaluation job of one version; its results are the metrics of its run."""

    model: str
    version: int
    job: str
    run_id: str
    input: str
    status: str
    metrics: dict[str, float] = Field(default_factory=dict)
    confusion_matrix: list[list[int]] | None = None
    per_class: dict[str, dict[str, float]] | None = None
    created_at: Timestamp
