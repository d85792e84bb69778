"""``AddTags``, ``ListTags``, ``DeleteTags`` on any SageMaker object, found by its ARN."""

from typing import Any

from naiad.server.compat.awsjson import AwsError, Context
from naiad.server.compat.listing import Fields, page
from naiad.server.compat.sagemaker import training
from naiad.server.compat.sagemaker.operations import KINDS, operation, tag_dict, tag_list
from naiad.store import aws_resources
from naiad.store.tables import AwsResourceRow

MAX_TAGS = 50


def _row(ctx: Context, arn: str, trials: bool = False) -> AwsResourceRow:
    """The resource's row; with ``trials``, a tuning job's trial reads as its tuning job,
    whose tags SageMaker gives every training job it launches."""
    resource = arn.split(":", 5)[-1] if arn.count(":") >= 5 else ""
    kind_type, _, lowered = resource.partition("/")
    kind = KINDS.get(kind_type)
    if kind is not None:
        for row in aws_resources.listed(ctx.session, kind):
            if row.name.lower() == lowered:
                return row
    if trials and kind == training.KIND:
        found = training.trial_named(ctx, lowered)
        if found is not None:
            return found[0]
    raise AwsError("ResourceNotFound", f"No SageMaker resource has the ARN {arn!r}.")


@operation("AddTags")
def add_tags(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    row = _row(ctx, params["ResourceArn"])
    tags = {**row.tags, **tag_dict(params["Tags"])}
    if len(tags) > MAX_TAGS:
        raise AwsError(
            "ValidationException",
            f"A resource holds at most {MAX_TAGS} tags; it would hold {len(tags)}.",
        )
    aws_resources.update(ctx.session, row, tags=tags)
    return {"Tags": tag_list(tags)}


@operation("ListTags")
def list_tags(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    row = _row(ctx, params["ResourceArn"], trials=True)
    items = list(row.tags.items())
    fields: Fields[tuple[str, str]] = Fields(name=lambda t: t[0], created=lambda t: row.created_at)
    kept, token = page(
        items, params, fields, default_sort="Name", default_order="Ascending", default_max=50
    )
    return {"Tags": [{"Key": k, "Value": v} for k, v in kept], "NextToken": token}


@operation("DeleteTags")
def delete_tags(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    row = _row(ctx, params["ResourceArn"])
    gone = set(params["TagKeys"])
    aws_resources.update(
        ctx.session, row, tags={k: v for k, v in row.tags.items() if k not in gone}
    )
    return {}
