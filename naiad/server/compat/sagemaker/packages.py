"""The model registry: a model package group is a Naiad registered model (named as the
group in lower case), each versioned model package one of its versions. Approving a
package points the Naiad alias ``approved`` at its version, so Naiad's own deploys can
follow SageMaker's approvals (``naiad endpoints create --model NAME@approved``)."""

from typing import Any

from naiad.core.errors import InvalidInput
from naiad.server.compat.awsjson import AwsError, Context
from naiad.server.compat.listing import page
from naiad.server.compat.sagemaker.hosting import register_container
from naiad.server.compat.sagemaker.operations import ROW_FIELDS, arn, operation, tag_dict
from naiad.store import aws_resources, models
from naiad.store.tables import AwsResourceRow

GROUP, PACKAGE = "ModelPackageGroup", "ModelPackage"
_ECHOED = (
    "InferenceSpecification",
    "ModelMetrics",
    "CustomerMetadataProperties",
    "MetadataProperties",
    "Domain",
    "Task",
    "SamplePayloadUrl",
    "ApprovalDescription",
)
APPROVED_ALIAS = "approved"


def _missing(what: str) -> AwsError:
    return AwsError("ValidationException", f"{what} does not exist.")


def _group(ctx: Context, name: str) -> AwsResourceRow:
    row = aws_resources.find(ctx.session, GROUP, _name_of(name))
    if row is None:
        raise _missing(f"ModelPackageGroup {name}")
    return row


def _name_of(name_or_arn: str) -> str:
    """The name in ``...:model-package-group/NAME`` or ``NAME``."""
    return name_or_arn.rsplit("/", 1)[-1] if name_or_arn.startswith("arn:") else name_or_arn


def _package_arn(ctx: Context, group: str, version: int) -> str:
    return ctx.caller.arn("sagemaker", f"model-package/{group.lower()}/{version}")


def _package(ctx: Context, name_or_arn: str) -> AwsResourceRow:
    """A versioned package by its ARN (``.../model-package/GROUP/N``) or ``GROUP/N``."""
    key = name_or_arn.split(":model-package/", 1)[-1]
    for row in aws_resources.listed(ctx.session, PACKAGE):
        if row.name.lower() == key.lower():
            return row
    raise _missing(f"ModelPackage {name_or_arn}")


@operation("CreateModelPackageGroup")
def create_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    name = params["ModelPackageGroupName"]
    if aws_resources.find(ctx.session, GROUP, name) is not None:
        raise AwsError("ValidationException", f"Model Package Group {name} already exists.")
    try:
        models.check_name(name.lower(), "Model package group name")
    except InvalidInput as exc:
        raise AwsError("ValidationException", exc.message) from None
    request = {k: v for k, v in params.items() if k != "Tags"}
    aws_resources.create(ctx.session, GROUP, name, request, tag_dict(params.get("Tags")))
    return {"ModelPackageGroupArn": arn(ctx, GROUP, name)}


@operation("DescribeModelPackageGroup")
def describe_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    row = _group(ctx, params["ModelPackageGroupName"])
    return {
        "ModelPackageGroupName": row.name,
        "ModelPackageGroupArn": arn(ctx, GROUP, row.name),
        "ModelPackageGroupDescription": row.request.get("ModelPackageGroupDescription"),
        "CreationTime": row.created_at,
        "CreatedBy": {},
        "ModelPackageGroupStatus": "Completed",
    }


@operation("ListModelPackageGroups")
def list_groups(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    rows = aws_resources.listed(ctx.session, GROUP)
    kept, token = page(rows, params, ROW_FIELDS)
    return {
        "ModelPackageGroupSummaryList": [
            {
                "ModelPackageGroupName": r.name,
                "ModelPackageGroupArn": arn(ctx, GROUP, r.name),
                "ModelPackageGroupDescription": r.request.get("ModelPackageGroupDescription"),
                "CreationTime": r.created_at,
                "ModelPackageGroupStatus": "Completed",
            }
            for r in kept
        ],
        "NextToken": token,
    }


@operation("DeleteModelPackageGroup")
def delete_group(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    row = _group(ctx, params["ModelPackageGroupName"])
    prefix = f"{row.name.lower()}/"
    if any(p.name.lower().startswith(prefix) for p in aws_resources.listed(ctx.session, PACKAGE)):
        raise AwsError(
            "ConflictException",
            f"Model package group {row.name} still holds model packages; delete them first.",
        )
    aws_resources.delete(ctx.session, row)
    return {}


@operation("CreateModelPackage")
def create_package(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    if "ModelPackageGroupName" not in params:
        raise AwsError(
            "ValidationException",
            "Give ModelPackageGroupName: Naiad keeps versioned model packages only.",
        )
    group = _group(ctx, params["ModelPackageGroupName"])
    containers = params.get("InferenceSpecification", {}).get("Containers", [])
    if len(containers) != 1 or not containers[0].get("ModelDataUrl"):
        raise AwsError(
            "ValidationException",
            "Give InferenceSpecification.Containers with one container and its ModelDataUrl.",
        )
    description = params.get("ModelPackageDescription", "")
    ref = register_container(ctx, group.name.lower(), containers[0], description)
    name, _, version = ref.partition(":")
    number = int(version)
    status = params.get("ModelApprovalStatus", "PendingManualApproval")
    request = {k: v for k, v in params.items() if k != "Tags"}
    request["ModelApprovalStatus"] = status
    aws_resources.create(
        ctx.session,
        PACKAGE,
        f"{group.name}/{number}",
        request,
        tag_dict(params.get("Tags")),
        ref=ref,
    )
    if status == "Approved":
        models.set_alias(ctx.session, name, APPROVED_ALIAS, number)
    return {"ModelPackageArn": _package_arn(ctx, group.name, number)}


def _version(row: AwsResourceRow) -> int:
    return int(row.name.rsplit("/", 1)[1])


def _package_summary(ctx: Context, row: AwsResourceRow) -> dict[str, Any]:
    group = row.name.rsplit("/", 1)[0]
    return {
        "ModelPackageName": group,
        "ModelPackageGroupName": group,
        "ModelPackageVersion": _version(row),
        "ModelPackageArn": _package_arn(ctx, group, _version(row)),
        "ModelPackageDescription": row.request.get("ModelPackageDescription"),
        "CreationTime": row.created_at,
        "ModelPackageStatus": "Completed",
        "ModelApprovalStatus": row.request["ModelApprovalStatus"],
    }


@operation("DescribeModelPackage")
def describe_package(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    row = _package(ctx, params["ModelPackageName"])
    answer = _package_summary(ctx, row)
    request = row.request
    for key in _ECHOED:
        if key in request:
            answer[key] = request[key]
    answer["ModelPackageStatusDetails"] = {"ValidationStatuses": [], "ImageScanStatuses": []}
    answer["LastModifiedTime"] = row.updated_at
    return answer


@operation("ListModelPackages")
def list_packages(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    rows = aws_resources.listed(ctx.session, PACKAGE)
    if "ModelPackageGroupName" in params:
        group = _name_of(params["ModelPackageGroupName"]).lower()
        rows = [r for r in rows if r.name.rsplit("/", 1)[0].lower() == group]
    if "ModelApprovalStatus" in params:
        rows = [
            r for r in rows if r.request["ModelApprovalStatus"] == params["ModelApprovalStatus"]
        ]
    if params.get("ModelPackageType") == "Unversioned":
        rows = []
    kept, token = page(rows, params, ROW_FIELDS)
    return {"ModelPackageSummaryList": [_package_summary(ctx, r) for r in kept], "NextToken": token}


@operation("UpdateModelPackage")
def update_package(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    row = _package(ctx, params["ModelPackageArn"])
    request = dict(row.request)
    for key in ("ModelApprovalStatus", "ApprovalDescription"):
        if key in params:
            request[key] = params[key]
    if "CustomerMetadataProperties" in params:
        merged = {
            **request.get("CustomerMetadataProperties", {}),
            **params["CustomerMetadataProperties"],
        }
        for gone in params.get("CustomerMetadataPropertiesToRemove", []):
            merged.pop(gone, None)
        request["CustomerMetadataProperties"] = merged
    aws_resources.update(ctx.session, row, request=request)
    if params.get("ModelApprovalStatus") == "Approved" and row.ref:
        name, _, number = row.ref.partition(":")
        models.set_alias(ctx.session, name, APPROVED_ALIAS, int(number))
    group = row.name.rsplit("/", 1)[0]
    return {"ModelPackageArn": _package_arn(ctx, group, _version(row))}


@operation("DeleteModelPackage")
def delete_package(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """SageMaker's record goes; the Naiad version stays (an endpoint may serve it)."""
    aws_resources.delete(ctx.session, _package(ctx, params["ModelPackageName"]))
    return {}
