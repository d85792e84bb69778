"""Experiments, trials and trial components over Naiad experiments and runs.

An experiment is the Naiad experiment of that name. A trial component is a Naiad run
(in the experiment ``sagemaker-trial-components`` when made through this API, with its
parameters as the run's); a training job's run is its trial component, named
``<job>-aws-training-job`` as SageMaker names it. A trial, which Naiad has no noun for,
is a named list of components in an experiment; associating a component tags its run
with the trial.
"""

from datetime import UTC, datetime
from typing import Any

from naiad.core.errors import Conflict, NaiadError, NotFound
from naiad.core.status import Status
from naiad.schemas.experiments import ExperimentCreate
from naiad.schemas.runs import RunCreate
from naiad.server.compat.awsjson import AwsError, Context
from naiad.server.compat.listing import Fields, page
from naiad.server.compat.sagemaker.operations import ROW_FIELDS, arn, operation, tag_dict
from naiad.server.compat.sagemaker.training import KIND as TRAINING_JOB
from naiad.server.compat.sagemaker.training import STATUS
from naiad.store import aws_resources, experiments, jobs, runs
from naiad.store.tables import AwsResourceRow

EXPERIMENT, TRIAL, COMPONENT = "Experiment", "Trial", "TrialComponent"
COMPONENTS_EXPERIMENT = "sagemaker-trial-components"
JOB_SUFFIX = "-aws-training-job"
TRIAL_TAG = "sagemaker.trial"
_TIME_BOUNDS = (("CreatedAfter", "CreationTimeAfter"), ("CreatedBefore", "CreationTimeBefore"))


def _not_found(what: str, name: str) -> AwsError:
    return AwsError("ResourceNotFound", f"{what} '{name}' does not exist.")


def _row(ctx: Context, kind: str, name: str, what: str) -> AwsResourceRow:
    row = aws_resources.find(ctx.session, kind, name)
    if row is None:
        raise _not_found(what, name)
    return row


def _unique(ctx: Context, kind: str, name: str, what: str) -> None:
    if aws_resources.find(ctx.session, kind, name) is not None:
        raise AwsError("ValidationException", f"{what} '{name}' already exists.")


def _created(params: dict[str, Any]) -> dict[str, Any]:
    """Trial-component lists name their time bounds CreatedAfter/CreatedBefore."""
    renamed = dict(params)
    for ours, theirs in _TIME_BOUNDS:
        if ours in renamed:
            renamed[theirs] = renamed.pop(ours)
    return renamed


# -- experiments ---------------------------------------------------------------------------


@operation("CreateExperiment")
def create_experiment(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    name = params["ExperimentName"]
    _unique(ctx, EXPERIMENT, name, "Experiment")
    try:
        experiments.get_row(ctx.session, name)
    except NotFound:
        body = ExperimentCreate(
            name=name, description=params.get("Description", ""), tags=tag_dict(params.get("Tags"))
        )
        experiments.create(ctx.session, body)
    request = {k: v for k, v in params.items() if k != "Tags"}
    aws_resources.create(ctx.session, EXPERIMENT, name, request, tag_dict(params.get("Tags")))
    return {"ExperimentArn": arn(ctx, EXPERIMENT, name)}


@operation("DescribeExperiment")
def describe_experiment(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    row = _row(ctx, EXPERIMENT, params["ExperimentName"], "Experiment")
    return {
        "ExperimentName": row.name,
        "ExperimentArn": arn(ctx, EXPERIMENT, row.name),
        "DisplayName": row.request.get("DisplayName", row.name),
        "Description": row.request.get("Description"),
        "CreationTime": row.created_at,
        "LastModifiedTime": row.updated_at,
    }


@operation("ListExperiments")
def list_experiments(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    rows = aws_resources.listed(ctx.session, EXPERIMENT)
    kept, token = page(rows, _created(params), ROW_FIELDS, default_max=50)
    summaries = [
        {
            "ExperimentName": r.name,
            "ExperimentArn": arn(ctx, EXPERIMENT, r.name),
            "DisplayName": r.request.get("DisplayName", r.name),
            "CreationTime": r.created_at,
            "LastModifiedTime": r.updated_at,
        }
        for r in kept
    ]
    return {"ExperimentSummaries": summaries, "NextToken": token}


@operation("DeleteExperiment")
def delete_experiment(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """As SageMaker: only an experiment without trials. Its Naiad experiment stays when it
    holds runs (deleting them is Naiad's own, explicit, operation)."""
    row = _row(ctx, EXPERIMENT, params["ExperimentName"], "Experiment")
    if any(
        t.request["ExperimentName"] == row.name for t in aws_resources.listed(ctx.session, TRIAL)
    ):
        raise AwsError(
            "ValidationException", f"Experiment '{row.name}' has trials; delete them first."
        )
    aws_resources.delete(ctx.session, row)
    try:
        if experiments.get(ctx.session, row.name).run_count == 0:
            experiments.delete(ctx.session, row.name)
    except (NotFound, Conflict):
        pass
    return {"ExperimentArn": arn(ctx, EXPERIMENT, row.name)}


# -- trials --------------------------------------------------------------------------------


@operation("CreateTrial")
def create_trial(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    name = params["TrialName"]
    _unique(ctx, TRIAL, name, "Trial")
    _row(ctx, EXPERIMENT, params["ExperimentName"], "Experiment")
    request = {k: v for k, v in params.items() if k != "Tags"}
    request["_components"] = []
    aws_resources.create(ctx.session, TRIAL, name, request, tag_dict(params.get("Tags")))
    return {"TrialArn": arn(ctx, TRIAL, name)}


def _trial_summary(ctx: Context, row: AwsResourceRow) -> dict[str, Any]:
    return {
        "TrialName": row.name,
        "TrialArn": arn(ctx, TRIAL, row.name),
        "DisplayName": row.request.get("DisplayName", row.name),
        "CreationTime": row.created_at,
        "LastModifiedTime": row.updated_at,
    }


@operation("DescribeTrial")
def describe_trial(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    row = _row(ctx, TRIAL, params["TrialName"], "Trial")
    return {**_trial_summary(ctx, row), "ExperimentName": row.request["ExperimentName"]}


@operation("ListTrials")
def list_trials(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    rows = aws_resources.listed(ctx.session, TRIAL)
    if "ExperimentName" in params:
        rows = [r for r in rows if r.request["ExperimentName"] == params["ExperimentName"]]
    if "TrialComponentName" in params:
        rows = [r for r in rows if params["TrialComponentName"] in r.request["_components"]]
    kept, token = page(rows, _created(params), ROW_FIELDS, default_max=50)
    return {"TrialSummaries": [_trial_summary(ctx, r) for r in kept], "NextToken": token}


@operation("DeleteTrial")
def delete_trial(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    row = _row(ctx, TRIAL, params["TrialName"], "Trial")
    if row.request["_components"]:
        raise AwsError(
            "ValidationException",
            f"Trial '{row.name}' has trial components; disassociate them first.",
        )
    aws_resources.delete(ctx.session, row)
    return {"TrialArn": arn(ctx, TRIAL, row.name)}


# -- trial components ----------------------------------------------------------------------


def _parameters(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if "NumberValue" in value:
            out[key] = value["NumberValue"]
        else:
            out[key] = value.get("StringValue", "")
    return out


@operation("CreateTrialComponent")
def create_trial_component(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    name = params["TrialComponentName"]
    _unique(ctx, COMPONENT, name, "TrialComponent")
    try:
        run = runs.create(
            ctx.session,
            RunCreate(
                experiment=COMPONENTS_EXPERIMENT,
                name=name,
                params=_parameters(params.get("Parameters", {})),
                tags={"sagemaker.trial_component": name},
            ),
            ctx.state.artifacts.uri,
        )
    except NaiadError as exc:
        raise AwsError("ValidationException", exc.message) from None
    request = {k: v for k, v in params.items() if k != "Tags"}
    aws_resources.create(
        ctx.session, COMPONENT, name, request, tag_dict(params.get("Tags")), ref=run.id
    )
    return {"TrialComponentArn": arn(ctx, COMPONENT, name)}


def _job_component(ctx: Context, name: str) -> tuple[AwsResourceRow, Any] | None:
    """The training job whose trial component is ``name`` (``<job>-aws-training-job``)."""
    if not name.endswith(JOB_SUFFIX):
        return None
    row = aws_resources.find(ctx.session, TRAINING_JOB, name[: -len(JOB_SUFFIX)])
    if row is None or row.ref is None:
        return None
    try:
        return row, jobs.get_row(ctx.session, row.ref)
    except NotFound:
        return None


def _metrics(ctx: Context, run_id: str) -> list[dict[str, Any]]:
    run = runs.get(ctx.session, run_id)
    out = []
    for key, summary in sorted(run.metrics.items()):
        if not isinstance(summary.value, int | float):
            continue
        out.append(
            {
                "MetricName": key,
                "TimeStamp": datetime.fromtimestamp(summary.timestamp, UTC),
                "Last": float(summary.value),
                "Max": float(summary.max) if isinstance(summary.max, int | float) else None,
                "Min": float(summary.min) if isinstance(summary.min, int | float) else None,
                "Count": summary.count,
            }
        )
    return out


def _wire_parameters(values: dict[str, Any]) -> dict[str, Any]:
    return {
        k: {"NumberValue": float(v)}
        if isinstance(v, int | float) and not isinstance(v, bool)
        else {"StringValue": str(v)}
        for k, v in values.items()
    }


def _describe_component(ctx: Context, name: str) -> dict[str, Any]:
    job = _job_component(ctx, name)
    if job is not None:
        aws_row, job_row = job
        return {
            "TrialComponentName": name,
            "TrialComponentArn": arn(ctx, COMPONENT, name),
            "DisplayName": name,
            "Source": {
                "SourceArn": arn(ctx, TRAINING_JOB, aws_row.name),
                "SourceType": "SageMakerTrainingJob",
            },
            "Status": {"PrimaryStatus": STATUS[Status(job_row.status)][0]},
            "StartTime": job_row.started_at,
            "EndTime": job_row.ended_at,
            "CreationTime": job_row.created_at,
            "LastModifiedTime": job_row.ended_at or job_row.created_at,
            "Parameters": _wire_parameters(aws_row.request.get("HyperParameters", {})),
            "Metrics": _metrics(ctx, job_row.run_id),
        }
    row = _row(ctx, COMPONENT, name, "TrialComponent")
    request = row.request
    answer = {
        "TrialComponentName": row.name,
        "TrialComponentArn": arn(ctx, COMPONENT, row.name),
        "DisplayName": request.get("DisplayName", row.name),
        "CreationTime": row.created_at,
        "LastModifiedTime": row.updated_at,
        "Metrics": _metrics(ctx, row.ref) if row.ref else [],
    }
    for key in (
        "Status",
        "StartTime",
        "EndTime",
        "Parameters",
        "InputArtifacts",
        "OutputArtifacts",
    ):
        if key in request:
            answer[key] = request[key]
    return answer


@operation("DescribeTrialComponent")
def describe_trial_component(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    return _describe_component(ctx, params["TrialComponentName"])


def _component_names(ctx: Context) -> list[tuple[str, datetime]]:
    names = [(r.name, r.created_at) for r in aws_resources.listed(ctx.session, COMPONENT)]
    names += [
        (r.name + JOB_SUFFIX, r.created_at) for r in aws_resources.listed(ctx.session, TRAINING_JOB)
    ]
    return names


@operation("ListTrialComponents")
def list_trial_components(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    items = _component_names(ctx)
    if "TrialName" in params:
        trial = _row(ctx, TRIAL, params["TrialName"], "Trial")
        items = [i for i in items if i[0] in trial.request["_components"]]
    if "ExperimentName" in params:
        wanted = {
            c
            for t in aws_resources.listed(ctx.session, TRIAL)
            if t.request["ExperimentName"] == params["ExperimentName"]
            for c in t.request["_components"]
        }
        items = [i for i in items if i[0] in wanted]
    if "SourceArn" in params:
        source = params["SourceArn"]
        items = [
            i
            for i in items
            if i[0].endswith(JOB_SUFFIX)
            and arn(ctx, TRAINING_JOB, i[0][: -len(JOB_SUFFIX)]) == source
        ]
    fields: Fields[tuple[str, datetime]] = Fields(name=lambda i: i[0], created=lambda i: i[1])
    kept, token = page(items, _created(params), fields, default_max=50)
    summaries = []
    for name, _created_at in kept:
        full = _describe_component(ctx, name)
        summaries.append({k: full[k] for k in (
            "TrialComponentName", "TrialComponentArn", "DisplayName", "Source", "Status",
            "StartTime", "EndTime", "CreationTime", "LastModifiedTime") if k in full})  # fmt: skip
    return {"TrialComponentSummaries": summaries, "NextToken": token}


def _component_run(ctx: Context, name: str) -> str | None:
    job = _job_component(ctx, name)
    if job is not None:
        return str(job[1].run_id)
    return _row(ctx, COMPONENT, name, "TrialComponent").ref


@operation("AssociateTrialComponent")
def associate(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    name, trial_name = params["TrialComponentName"], params["TrialName"]
    trial = _row(ctx, TRIAL, trial_name, "Trial")
    run_id = _component_run(ctx, name)
    components = list(trial.request["_components"])
    if name not in components:
        components.append(name)
        aws_resources.update(
            ctx.session, trial, request={**trial.request, "_components": components}
        )
    if run_id is not None:
        runs.set_tags(ctx.session, run_id, {TRIAL_TAG: trial_name})
    return {"TrialComponentArn": arn(ctx, COMPONENT, name), "TrialArn": arn(ctx, TRIAL, trial_name)}


@operation("DisassociateTrialComponent")
def disassociate(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    name, trial_name = params["TrialComponentName"], params["TrialName"]
    trial = _row(ctx, TRIAL, trial_name, "Trial")
    components = [c for c in trial.request["_components"] if c != name]
    aws_resources.update(ctx.session, trial, request={**trial.request, "_components": components})
    return {"TrialComponentArn": arn(ctx, COMPONENT, name), "TrialArn": arn(ctx, TRIAL, trial_name)}


@operation("DeleteTrialComponent")
def delete_trial_component(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    name = params["TrialComponentName"]
    row = _row(ctx, COMPONENT, name, "TrialComponent")
    if any(name in t.request["_components"] for t in aws_resources.listed(ctx.session, TRIAL)):
        raise AwsError(
            "ValidationException",
            f"TrialComponent '{name}' is associated with a trial; disassociate it first.",
        )
    aws_resources.delete(ctx.session, row)
    return {"TrialComponentArn": arn(ctx, COMPONENT, name)}
