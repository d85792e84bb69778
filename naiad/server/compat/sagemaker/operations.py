"""The registry of SageMaker operations, and what the families share: ARNs, and the
``aws_resources`` row that holds what only SageMaker's API shows of an object."""

from typing import Any

from naiad.server.compat.awsjson import Context, Registry, not_found
from naiad.server.compat.listing import Fields
from naiad.store import aws_resources
from naiad.store.tables import AwsResourceRow

registry = Registry("sagemaker", "SageMaker")
# What the list operations filter and sort a resource row by: its name, when it was made.
ROW_FIELDS: Fields[AwsResourceRow] = Fields(name=lambda r: r.name, created=lambda r: r.created_at)
operation = registry.operation

# The ARN's resource type of each kind (arn:aws:sagemaker:REGION:ACCOUNT:TYPE/NAME).
ARN_TYPES = {
    "TrainingJob": "training-job",
    "Model": "model",
    "EndpointConfig": "endpoint-config",
    "Endpoint": "endpoint",
    "ModelPackageGroup": "model-package-group",
    "ModelPackage": "model-package",
    "Experiment": "experiment",
    "Trial": "experiment-trial",
    "TrialComponent": "experiment-trial-component",
    "HyperParameterTuningJob": "hyper-parameter-tuning-job",
    "NotebookInstance": "notebook-instance",
}
KINDS = {v: k for k, v in ARN_TYPES.items()}


def arn(ctx: Context, kind: str, name: str) -> str:
    # SageMaker writes the names of most resources lower-case in their ARNs.
    return ctx.caller.arn("sagemaker", f"{ARN_TYPES[kind]}/{name.lower()}")


def resource(ctx: Context, kind: str, name: str, missing: str) -> AwsResourceRow:
    row = aws_resources.find(ctx.session, kind, name)
    if row is None:
        raise not_found(missing)
    return row


def tag_list(tags: dict[str, str]) -> list[dict[str, Any]]:
    return [{"Key": k, "Value": v} for k, v in tags.items()]


def tag_dict(tags: list[dict[str, Any]] | None) -> dict[str, str]:
    return {t["Key"]: t.get("Value", "") for t in tags or []}
