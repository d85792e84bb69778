"""Notebook instances: ``CreateNotebookInstance`` and friends over Naiad's managed notebook
servers.

A notebook instance is a Naiad notebook named as it is in lower case: its JupyterLab runs
on this server's machine and opens at ``/notebooks/NAME/lab`` through the server's URL.
The notebook's row holds its state (SageMaker's statuses are Naiad's own); the
``aws_resources`` row holds the request (instance type, role, volume size, ...), which
only this API shows. Notebooks made in the console, the CLI or the SDK are listed and
described too, without those fields. ``CreatePresignedNotebookInstanceUrl`` signs a link
that logs a browser in (``naiad.server.presigned``).
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from naiad.schemas.notebooks import NotebookCreate
from naiad.server import presigned
from naiad.server.compat.awsjson import AwsError, Context, service_model
from naiad.server.compat.listing import Fields, page
from naiad.server.compat.sagemaker.operations import arn, operation, tag_dict
from naiad.server.managed.notebooks import PREFIX, available
from naiad.store import aws_resources, notebooks
from naiad.store.tables import AwsResourceRow, NotebookRow

KIND = "NotebookInstance"
_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")
DEFAULT_VOLUME_GB = 5  # SageMaker's default, shown when none was asked for
SESSION_DEFAULT_S, SESSION_MAX_S = 12 * 3600, 12 * 3600  # the model's default and bound
# What Describe echoes of the request as it was given (none of it changes how it runs).
ECHOED = (
    "InstanceType", "SubnetId", "RoleArn", "KmsKeyId", "AcceleratorTypes",
    "DirectInternetAccess", "RootAccess", "PlatformIdentifier", "IpAddressType",
    "InstanceMetadataServiceConfiguration",
)  # fmt: skip
# What SageMaker describes when the request left it out.
DEFAULTS = {"DirectInternetAccess": "Enabled", "RootAccess": "Enabled"}


@dataclass(frozen=True)
class Seen:
    """A notebook as this API shows it: its SageMaker name, its Naiad row, and the request
    that made it (None for a notebook made elsewhere)."""

    name: str
    row: NotebookRow
    made: AwsResourceRow | None

    @property
    def request(self) -> dict[str, Any]:
        return self.made.request if self.made is not None else {}


def _invalid(message: str) -> AwsError:
    return AwsError("ValidationException", message)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _current(made: AwsResourceRow, row: NotebookRow) -> bool:
    """Whether ``made`` is the request of this notebook rather than of an earlier one of
    the same name (both rows are written in one transaction, the request's second)."""
    return made.ref == row.name and _aware(made.created_at) >= _aware(row.created_at)


def _all(ctx: Context) -> list[Seen]:
    made = aws_resources.listed(ctx.session, KIND)
    seen = []
    for row in notebooks.listed(ctx.session):
        mine = [m for m in made if _current(m, row)]
        request = mine[-1] if mine else None
        seen.append(Seen(request.name if request else row.name, row, request))
    return seen


def _prune(ctx: Context) -> None:
    """Forget the requests of notebooks that are gone (deleted, here or by Naiad's API)."""
    rows = {row.name: row for row in notebooks.listed(ctx.session)}
    for made in aws_resources.listed(ctx.session, KIND):
        row = rows.get(made.ref or "")
        if row is None or not _current(made, row):
            aws_resources.delete(ctx.session, made)


def _find(ctx: Context, name: str) -> Seen:
    """The notebook of that name, regardless of case as on AWS (an exact match first)."""
    found = [s for s in _all(ctx) if s.name.lower() == name.lower()]
    exact = [s for s in found if s.name == name or s.row.name == name]
    if exact or found:
        return (exact or found)[0]
    raise _invalid("RecordNotFound")  # AWS's whole message; its waiters expect the code


def _arn(ctx: Context, seen: Seen) -> str:
    return arn(ctx, KIND, seen.name)


def _url(ctx: Context, row: NotebookRow) -> str:
    """Where it opens, as SageMaker gives it: without the scheme (``host/...``)."""
    origin = ctx.origin or ctx.state.settings.url
    return f"{origin.partition('://')[2]}{PREFIX}/{row.name}/lab"


def _modified(seen: Seen) -> datetime:
    moments = [seen.row.created_at, seen.row.started_at]
    if seen.made is not None:
        moments.append(seen.made.updated_at)
    return max(_aware(m) for m in moments if m is not None)


def _touch(ctx: Context, seen: Seen) -> None:
    """Record the change of state in LastModifiedTime."""
    if seen.made is not None:
        aws_resources.update(ctx.session, seen.made)


def _transition_refused(ctx: Context, seen: Seen, allowed: list[str], target: str) -> AwsError:
    """AWS's own words for a status change the current status does not allow."""
    return _invalid(
        f"Status ({seen.row.status}) not in ([{', '.join(allowed)}]). Unable to transition "
        f"to ({target}) for Notebook Instance ({_arn(ctx, seen)})."
    )


def _capacity() -> None:
    missing = available()
    if missing is not None:
        raise AwsError(
            "ResourceLimitExceeded", f"This server runs no notebook instances: {missing}"
        )


# -- CreateNotebookInstance ---------------------------------------------------------------


def _check_request(params: dict[str, Any]) -> None:
    name = params["NotebookInstanceName"]
    if not _NAME.fullmatch(name):
        raise _invalid(
            f"NotebookInstanceName {name[:80]!r} is not valid: use 1-63 letters, digits or "
            "'-', starting and ending with a letter or digit."
        )
    shape = service_model("sagemaker").shape_for("InstanceType")
    if params["InstanceType"] not in shape.enum:
        raise _invalid(
            f"InstanceType {params['InstanceType']!r} is not a notebook instance type "
            "(e.g. ml.t3.medium, ml.m5.xlarge, ml.g5.xlarge)."
        )
    for key in ("DefaultCodeRepository", "AdditionalCodeRepositories"):
        if params.get(key):
            raise _invalid(
                f"{key} is not supported: Naiad does not clone repositories into a notebook. "
                "Create it without one and clone from a terminal in JupyterLab, or make it "
                "with Naiad's own API from a folder (`naiad notebooks create NAME "
                "--source DIR`)."
            )
    if params.get("LifecycleConfigName"):
        raise _invalid(
            "LifecycleConfigName is not supported: Naiad has no notebook instance lifecycle "
            "configurations (CreateNotebookInstanceLifecycleConfig is not implemented). A "
            "requirements.txt in the notebook's files gives its kernel packages."
        )


@operation("CreateNotebookInstance")
def create_notebook_instance(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    _check_request(params)
    name = params["NotebookInstanceName"]
    _prune(ctx)
    if any(s.name.lower() == name.lower() or s.row.name == name.lower() for s in _all(ctx)):
        raise _invalid(
            f"Cannot create a duplicate Notebook Instance ({arn(ctx, KIND, name)}); notebook "
            "names are unique regardless of case."
        )
    _capacity()
    body = NotebookCreate(
        name=name.lower(),
        description=f"SageMaker notebook instance {name} ({params['InstanceType']})",
    )
    row = notebooks.create(ctx.session, body)
    request = {k: v for k, v in params.items() if k != "Tags"}
    aws_resources.create(
        ctx.session, KIND, name, request, tag_dict(params.get("Tags")), ref=row.name
    )
    return {"NotebookInstanceArn": arn(ctx, KIND, name)}


# -- describing, listing ------------------------------------------------------------------


def _summary(ctx: Context, seen: Seen) -> dict[str, Any]:
    return {
        "NotebookInstanceName": seen.name,
        "NotebookInstanceArn": _arn(ctx, seen),
        "NotebookInstanceStatus": seen.row.status,
        "Url": _url(ctx, seen.row),
        "InstanceType": seen.request.get("InstanceType"),
        "CreationTime": seen.row.created_at,
        "LastModifiedTime": _modified(seen),
    }


@operation("DescribeNotebookInstance")
def describe_notebook_instance(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    seen = _find(ctx, params["NotebookInstanceName"])
    request = seen.request
    answer: dict[str, Any] = {key: request[key] for key in ECHOED if key in request}
    if seen.made is not None:
        answer = {**DEFAULTS, **answer}
        answer["SecurityGroups"] = request.get("SecurityGroupIds")
        answer["VolumeSizeInGB"] = request.get("VolumeSizeInGB", DEFAULT_VOLUME_GB)
    answer.update(_summary(ctx, seen))
    if seen.row.status == "Failed" and seen.row.status_reason:
        answer["FailureReason"] = seen.row.status_reason[:1024]
    return answer


@operation("ListNotebookInstances")
def list_notebook_instances(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    _prune(ctx)
    found = _all(ctx)
    # No notebook here has a lifecycle configuration or a code repository.
    unmatched = (
        "NotebookInstanceLifecycleConfigNameContains",
        "DefaultCodeRepositoryContains",
        "AdditionalCodeRepositoryEquals",
    )
    if any(key in params for key in unmatched):
        found = []
    fields: Fields[Seen] = Fields(
        name=lambda s: s.name,
        created=lambda s: s.row.created_at,
        status=lambda s: s.row.status,
        modified=_modified,
    )
    kept, token = page(found, params, fields, default_sort="Name", default_order="Ascending")
    return {"NotebookInstances": [_summary(ctx, s) for s in kept], "NextToken": token}


# -- stopping, starting, deleting ---------------------------------------------------------


def _move(
    ctx: Context, params: dict[str, Any], allowed: list[str], status: str, reason: str
) -> dict[str, Any]:
    """Move a notebook instance on, where SageMaker's rules allow it from its status."""
    seen = _find(ctx, params["NotebookInstanceName"])
    if seen.row.status not in allowed:
        raise _transition_refused(ctx, seen, allowed, status)
    if status == "Pending":
        _capacity()
    notebooks.set_status(seen.row, status, reason)
    _touch(ctx, seen)
    return {}


@operation("StopNotebookInstance")
def stop_notebook_instance(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return _move(
        ctx, params, ["InService"], "Stopping", "Stopped on request (StopNotebookInstance)"
    )


@operation("StartNotebookInstance")
def start_notebook_instance(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return _move(ctx, params, ["Stopped", "Failed"], "Pending", "Starting JupyterLab")


@operation("DeleteNotebookInstance")
def delete_notebook_instance(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return _move(
        ctx, params, ["Stopped", "Failed"], "Deleting", "Deleted on request; its files go with it"
    )


# -- CreatePresignedNotebookInstanceUrl ---------------------------------------------------


@operation("CreatePresignedNotebookInstanceUrl")
def presigned_notebook_url(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    seen = _find(ctx, params["NotebookInstanceName"])
    session_s = params.get("SessionExpirationDurationInSeconds", SESSION_DEFAULT_S)
    if session_s > SESSION_MAX_S:
        raise _invalid(
            f"SessionExpirationDurationInSeconds is {session_s}; it must be at most "
            f"{SESSION_MAX_S} (12 hours)."
        )
    origin = ctx.origin or ctx.state.settings.url
    url = f"{origin}{PREFIX}/{seen.row.name}/lab"
    token = ctx.state.token
    if token is not None:
        url += f"?{presigned.PARAM}={presigned.sign(token, seen.row.name, session_s)}"
    return {"AuthorizedUrl": url}
