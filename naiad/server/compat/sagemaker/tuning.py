"""Hyperparameter tuning: ``CreateHyperParameterTuningJob`` and friends over Naiad tuning
jobs.

A SageMaker tuning job is a Naiad tuning job named as it is in lower case; its
``TrainingJobDefinition`` becomes the trials' template as ``CreateTrainingJob`` would make
a job of it (``training.job_fields``), its objective the metric its ``MetricDefinitions``
regex reads from each trial's log. The trials are Naiad jobs named ``<name>-NNN-xxxxxxxx``;
``training.py`` lists and describes them as training jobs. Strategies: Bayesian is TPE,
Random and Grid are themselves, Hyperband is random sampling with Hyperband's early
stopping; ``TrainingJobEarlyStoppingType`` Auto stops a trial below the median of the
earlier trials at the same step.
"""

import math
import re
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from naiad.core.errors import InvalidInput, NotFound
from naiad.core.status import Status
from naiad.schemas.tuning import ParameterRange, TuningJobCreate
from naiad.server.compat.awsjson import AwsError, Context, in_use
from naiad.server.compat.listing import Fields, page
from naiad.server.compat.sagemaker import training
from naiad.server.compat.sagemaker.operations import arn, operation, tag_dict
from naiad.services import tuning as tuning_service
from naiad.store import aws_resources, tuning
from naiad.store.tables import AwsResourceRow, JobRow, TuningJobRow, TuningTrialRow

KIND = training.TUNING_KIND
TUNING_METRIC = "_tuning_objective_metric"
_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}")
# SageMaker's strategy -> Naiad's sampler, and the early stopping it brings of its own.
STRATEGIES = {"Bayesian": "tpe", "Random": "random", "Grid": "grid", "Hyperband": "random"}
SCALING = {"Auto": "auto", "Linear": "linear", "Logarithmic": "log"}
RANGES = {
    "IntegerParameterRanges": "integer",
    "ContinuousParameterRanges": "continuous",
    "CategoricalParameterRanges": "categorical",
}
STATUS = {
    Status.PENDING: "InProgress",
    Status.STARTING: "InProgress",
    Status.RUNNING: "InProgress",
    Status.STOPPING: "Stopping",
    Status.COMPLETED: "Completed",
    Status.FAILED: "Failed",
    Status.STOPPED: "Stopped",
}
# A trial whose job is gone: its training job's status, from how the trial ended.
_GONE = {"complete": "Completed", "failed": "Failed", "pruned": "Stopped", "stopped": "Stopped"}
# Naiad's names in a refusal -> SageMaker's.
_FIELDS = {
    "name": "HyperParameterTuningJobName",
    "template": "TrainingJobDefinition",
    "space": "ParameterRanges",
    "objective": "HyperParameterTuningJobObjective",
    "max_trials": "ResourceLimits.MaxNumberOfTrainingJobs",
    "parallel": "ResourceLimits.MaxParallelTrainingJobs",
    "max_runtime_s": "ResourceLimits.MaxRuntimeInSeconds",
    "warm_start": "WarmStartConfig.ParentHyperParameterTuningJobs",
    "seed": "RandomSeed",
}
Pairs = list[tuple[TuningTrialRow, JobRow | None]]


def _invalid(message: str) -> AwsError:
    return AwsError("ValidationException", message)


# -- CreateHyperParameterTuningJob ------------------------------------------------------


def _one_of(value: Any, allowed: Any, where: str) -> None:
    if value not in allowed:
        raise _invalid(f"{where} is {value!r}; use one of {', '.join(allowed)}.")


def _refuse_unsupported(params: dict[str, Any], config: dict[str, Any]) -> None:
    _one_of(config["Strategy"], STRATEGIES, "HyperParameterTuningJobConfig.Strategy")
    early = config.get("TrainingJobEarlyStoppingType", "Off")
    _one_of(early, ("Off", "Auto"), "HyperParameterTuningJobConfig.TrainingJobEarlyStoppingType")
    if "TrainingJobDefinitions" in params:
        raise _invalid(
            "TrainingJobDefinitions (several algorithms in one tuning job) is not supported; "
            "give one TrainingJobDefinition."
        )
    if "TrainingJobDefinition" not in params:
        raise _invalid("TrainingJobDefinition is required: the training job each trial runs.")
    if "Autotune" in params:
        raise _invalid("Autotune is not supported; give the ParameterRanges to search.")
    criteria = config.get("TuningJobCompletionCriteria", {})
    converge = criteria.get("ConvergenceDetected", {}).get("CompleteOnConvergence")
    if {"TargetObjectiveMetricValue", "BestObjectiveNotImproving"} & set(criteria) or (
        converge == "Enabled"
    ):
        raise _invalid(
            "TuningJobCompletionCriteria is not supported: a tuning job ends after "
            "ResourceLimits.MaxNumberOfTrainingJobs trials or MaxRuntimeInSeconds."
        )
    if config["Strategy"] == "Hyperband" and config.get("TrainingJobEarlyStoppingType") == "Auto":
        raise _invalid(
            "TrainingJobEarlyStoppingType must be Off with Strategy Hyperband: Hyperband "
            "stops unpromising training jobs itself."
        )


def _number(text: str, where: str, integer: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or (integer and value != int(value)):
        kind = "a whole number" if integer else "a finite number"
        raise _invalid(f"{where} is {text!r}, not {kind}.")
    return value


def _range(kind: str, given: dict[str, Any], index: int) -> ParameterRange:
    """One of SageMaker's ranges as Naiad's, refused in SageMaker's words."""
    name = given["Name"]
    where = f"ParameterRanges.{kind}[{index}] ({name!r})"
    naiad = RANGES[kind]
    fields: dict[str, Any] = {"name": name, "type": naiad}
    if naiad == "categorical":
        fields["values"] = list(given["Values"])
    else:
        scaling = given.get("ScalingType", "Auto")
        if scaling not in SCALING:
            raise _invalid(
                f"{where}: ScalingType {scaling} is not supported; use Auto, Linear or Logarithmic."
            )
        low = _number(given["MinValue"], f"{where}: MinValue", naiad == "integer")
        high = _number(given["MaxValue"], f"{where}: MaxValue", naiad == "integer")
        if low > high or (naiad == "continuous" and low == high):
            raise _invalid(f"{where}: MinValue {low:g} must be below MaxValue {high:g}.")
        if scaling == "Logarithmic" and low <= 0:
            raise _invalid(
                f"{where}: ScalingType Logarithmic needs MinValue above 0 (it is {low:g}); "
                "use e.g. 1e-5, or Linear scaling."
            )
        fields |= {"min": low, "max": high, "scaling": SCALING[scaling]}
    return training.validated(ParameterRange, fields, f"{where}: ")


def _space(config: dict[str, Any], definition: dict[str, Any]) -> list[ParameterRange]:
    given = config.get("ParameterRanges") or definition.get("HyperParameterRanges") or {}
    if given.get("AutoParameters"):
        raise _invalid("AutoParameters is not supported; give each range with its bounds.")
    space = [_range(k, r, i) for k in RANGES for i, r in enumerate(given.get(k, []))]
    if not space:
        raise _invalid(
            "ParameterRanges is empty: give at least one of IntegerParameterRanges, "
            "ContinuousParameterRanges or CategoricalParameterRanges."
        )
    names = [r.name for r in space]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise _invalid(f"ParameterRanges name {', '.join(map(repr, twice))} more than once.")
    static = set(definition.get("StaticHyperParameters", {}))
    both = sorted(static & set(names))
    if both:
        raise _invalid(
            f"{', '.join(map(repr, both))} is both in StaticHyperParameters and tuned in "
            "ParameterRanges; give each hyperparameter in one of them."
        )
    return space


def _grid(config: dict[str, Any], space: list[ParameterRange]) -> None:
    continuous = [r.name for r in space if r.type == "continuous"]
    if continuous:
        raise _invalid(
            f"Strategy Grid tries every combination of values, so it takes "
            f"CategoricalParameterRanges and IntegerParameterRanges only; "
            f"{', '.join(map(repr, continuous))} is a ContinuousParameterRange (give the "
            "values to try as a CategoricalParameterRange, or use Strategy Random or Bayesian)."
        )
    size = math.prod(len(r.grid() or []) for r in space)
    wanted = config["ResourceLimits"].get("MaxNumberOfTrainingJobs")
    if wanted is not None and wanted > size:
        raise _invalid(
            f"The grid has {size} combinations, so Strategy Grid runs at most {size} training "
            f"jobs; ResourceLimits.MaxNumberOfTrainingJobs is {wanted} (leave it out to run "
            "them all)."
        )


def _objective(
    config: dict[str, Any], definition: dict[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Naiad's objective, its regex the objective's own metric definition, and the other
    definitions (the template must not define the objective's metric a second time)."""
    objective = config.get("HyperParameterTuningJobObjective") or definition.get("TuningObjective")
    if objective is None:
        raise _invalid(
            "HyperParameterTuningJobConfig.HyperParameterTuningJobObjective is required: "
            "the metric to optimize (one of MetricDefinitions) and Maximize or Minimize."
        )
    _one_of(objective["Type"], ("Maximize", "Minimize"), "HyperParameterTuningJobObjective.Type")
    metric = objective["MetricName"]
    definitions = definition["AlgorithmSpecification"].get("MetricDefinitions", [])
    mine = [d for d in definitions if d["Name"] == metric]
    if not mine:
        names = ", ".join(repr(d["Name"]) for d in definitions) or "none"
        raise _invalid(
            f"The objective metric {metric!r} is not one of the TrainingJobDefinition's "
            f"AlgorithmSpecification.MetricDefinitions ({names}); add a MetricDefinition "
            f"named {metric!r} with the Regex that finds its value in the training log."
        )
    direction = "maximize" if objective["Type"] == "Maximize" else "minimize"
    others = [d for d in definitions if d["Name"] != metric]
    return {"metric": metric, "direction": direction, "regex": mine[0]["Regex"]}, others


def _template(ctx: Context, definition: dict[str, Any], others: list) -> dict[str, Any]:
    """The trials' template, as CreateTrainingJob makes a job of the same fields; its
    experiment is left to default to the tuning job's name."""
    algorithm = {**definition["AlgorithmSpecification"], "MetricDefinitions": others}
    request = {
        **definition,
        "AlgorithmSpecification": algorithm,
        "HyperParameters": definition.get("StaticHyperParameters", {}),
    }
    fields = training.job_fields(ctx, request, None)
    del fields["experiment"]
    return fields


def _parents(ctx: Context, params: dict[str, Any]) -> list[str]:
    """The Naiad names of the tuning jobs a warm start continues from."""
    warm = params.get("WarmStartConfig")
    if warm is None:
        return []
    if warm["WarmStartType"] != "IdenticalDataAndAlgorithm":
        raise _invalid(
            f"WarmStartType {warm['WarmStartType']} is not supported: a warm start reuses "
            "the trials of parents over the same data, algorithm and hyperparameters "
            "(IdenticalDataAndAlgorithm)."
        )
    names: list[str] = []
    for parent in warm["ParentHyperParameterTuningJobs"]:
        name = parent.get("HyperParameterTuningJobName")
        if not name:
            raise _invalid("WarmStartConfig: each parent needs its HyperParameterTuningJobName.")
        row = aws_resources.find(ctx.session, KIND, name)
        naiad = row.ref if row is not None and row.ref else name.lower()
        try:
            tuning.get_row(ctx.session, naiad)
        except NotFound:
            raise _invalid(
                f"WarmStartConfig: the parent tuning job {name!r} does not exist; "
                "ListHyperParameterTuningJobs shows those that do."
            ) from None
        names.append(naiad)
    return names


@operation("CreateHyperParameterTuningJob")
def create_tuning_job(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    name = params["HyperParameterTuningJobName"]
    if not _NAME.fullmatch(name):
        raise _invalid(
            f"HyperParameterTuningJobName {name!r} is not valid: use 1-32 letters, digits "
            "or '-', starting and ending with a letter or digit."
        )
    naiad_name = name.lower()
    taken = aws_resources.find(ctx.session, KIND, name) is not None
    try:
        tuning.get_row(ctx.session, naiad_name)
        taken = True
    except NotFound:
        pass
    if taken:
        raise in_use(
            f"A hyperparameter tuning job named {name!r} already exists "
            f"({arn(ctx, KIND, name)}); tuning job names are unique regardless of case."
        )
    config = params["HyperParameterTuningJobConfig"]
    _refuse_unsupported(params, config)
    definition = params["TrainingJobDefinition"]
    space = _space(config, definition)
    if config["Strategy"] == "Grid":
        _grid(config, space)
    objective, others = _objective(config, definition)
    limits = config["ResourceLimits"]
    early = "median" if config.get("TrainingJobEarlyStoppingType") == "Auto" else "none"
    fields = {
        "name": naiad_name,
        "template": _template(ctx, definition, others),
        "space": space,
        "objective": objective,
        "strategy": STRATEGIES[config["Strategy"]],
        "early_stopping": "hyperband" if config["Strategy"] == "Hyperband" else early,
        "max_trials": limits.get("MaxNumberOfTrainingJobs"),
        "parallel": limits["MaxParallelTrainingJobs"],
        "max_runtime_s": limits.get("MaxRuntimeInSeconds"),
        "warm_start": _parents(ctx, params),
        "seed": config.get("RandomSeed"),
        # each trial's model.tar.gz at S3OutputPath/<trial>/output, as SageMaker puts it
        "output_root": training.output_root(ctx, definition),
    }
    body = _validated(fields)
    state = ctx.state
    launcher = tuning_service.Launcher(state.artifacts, state.slots, state.executor.nodes)
    try:
        row = tuning_service.submit(ctx.session, body, launcher)
    except InvalidInput as exc:
        message = exc.message.replace("The trials' template: ", "TrainingJobDefinition: ")
        raise _invalid(message.replace("warm_start: ", "WarmStartConfig: ")) from None
    # Described as SageMaker does: the objective added to the static hyperparameters (script
    # mode does not pass it on), and a ResourceConfig (the SDK's attach() reads it)
    static = {**definition.get("StaticHyperParameters", {}), TUNING_METRIC: objective["metric"]}
    request = {k: v for k, v in params.items() if k != "Tags"}
    request["TrainingJobDefinition"] = {
        **definition,
        "StaticHyperParameters": static,
        "ResourceConfig": training.resource_config(definition),
    }
    aws_resources.create(
        ctx.session, KIND, name, request, tag_dict(params.get("Tags")), ref=row.name
    )
    return {"HyperParameterTuningJobArn": arn(ctx, KIND, name)}


def _validated(fields: dict[str, Any]) -> TuningJobCreate:
    """The Naiad request, or a ValidationException naming SageMaker's fields."""
    try:
        return TuningJobCreate.model_validate(fields)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = [str(p) for p in error["loc"]]
            if loc:
                loc[0] = _FIELDS.get(loc[0], loc[0])
            where = f"{'.'.join(loc)}: " if loc else ""
            problems.append(where + error["msg"].removeprefix("Value error, "))
        raise _invalid("; ".join(problems)) from None


# -- describing, listing, stopping ------------------------------------------------------


def _tuning_job(ctx: Context, name: str) -> tuple[AwsResourceRow, TuningJobRow]:
    row = aws_resources.find(ctx.session, KIND, name)
    if row is not None:
        try:
            return row, tuning.get_row(ctx.session, row.ref or name.lower())
        except NotFound:
            pass
    raise AwsError("ResourceNotFound", f"No hyperparameter tuning job named {name!r} exists.")


def _status(row: TuningJobRow) -> str:
    if row.stop_requested and not Status(row.status).terminal:
        return "Stopping"
    return STATUS[Status(row.status)]


def _job_status(trial: TuningTrialRow, job: JobRow | None) -> str:
    if job is None:
        return _GONE.get(trial.outcome, "Failed")
    return training.STATUS[Status(job.status)][0]


def _objective_status(trial: TuningTrialRow) -> str:
    if trial.outcome == "running":
        return "Pending"
    scored = trial.outcome in ("complete", "pruned") and trial.value is not None
    return "Succeeded" if scored else "Failed"


def _counters(pairs: Pairs) -> tuple[dict[str, int], dict[str, int]]:
    jobs = dict.fromkeys(("Completed", "InProgress", "RetryableError", "NonRetryableError"), 0)
    jobs["Stopped"] = 0
    objectives = {"Succeeded": 0, "Pending": 0, "Failed": 0}
    for trial, job in pairs:
        status = _job_status(trial, job)
        key = {"Failed": "NonRetryableError", "Stopping": "InProgress"}.get(status, status)
        jobs[key] += 1
        objectives[_objective_status(trial)] += 1
    return jobs, objectives


def _trial_summary(
    ctx: Context, tuner: AwsResourceRow, row: TuningJobRow, trial: TuningTrialRow, job: JobRow
) -> dict[str, Any]:
    """A trial as a ``HyperParameterTrainingJobSummary``."""
    summary: dict[str, Any] = {
        "TrainingJobName": job.name,
        "TrainingJobArn": arn(ctx, training.KIND, job.name),
        "TuningJobName": tuner.name,
        "TrainingJobDefinitionName": tuner.request["TrainingJobDefinition"].get("DefinitionName"),
        "CreationTime": job.created_at,
        "TrainingStartTime": job.started_at,
        "TrainingEndTime": job.ended_at,
        "TrainingJobStatus": _job_status(trial, job),
        "TunedHyperParameters": training.hp_strings(trial.params),
        "ObjectiveStatus": _objective_status(trial),
    }
    if trial.outcome == "failed" and trial.reason:
        summary["FailureReason"] = trial.reason[:1024]
    if trial.value is not None and trial.outcome in ("complete", "pruned"):
        objective = row.spec.objective
        summary["FinalHyperParameterTuningJobObjectiveMetric"] = {
            "Type": "Maximize" if objective.direction == "maximize" else "Minimize",
            "MetricName": objective.metric,
            "Value": trial.value,
        }
    return summary


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _modified(row: TuningJobRow, pairs: Pairs) -> datetime:
    moments = [row.created_at, row.ended_at]
    moments += [m for t, _ in pairs for m in (t.created_at, t.ended_at)]
    return max(_aware(m) for m in moments if m is not None)


def _summary(ctx: Context, tuner: AwsResourceRow, row: TuningJobRow) -> dict[str, Any]:
    """What ``ListHyperParameterTuningJobs`` shows of a tuning job (Describe shows more)."""
    pairs = tuning.trials(ctx.session, row.id)
    jobs, objectives = _counters(pairs)
    config = tuner.request["HyperParameterTuningJobConfig"]
    return {
        "HyperParameterTuningJobName": tuner.name,
        "HyperParameterTuningJobArn": arn(ctx, KIND, tuner.name),
        "HyperParameterTuningJobStatus": _status(row),
        "Strategy": config["Strategy"],
        "CreationTime": row.created_at,
        "HyperParameterTuningEndTime": row.ended_at,
        "LastModifiedTime": _modified(row, pairs),
        "TrainingJobStatusCounters": jobs,
        "ObjectiveStatusCounters": objectives,
        "ResourceLimits": config["ResourceLimits"],
    }


@operation("DescribeHyperParameterTuningJob")
def describe_tuning_job(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    tuner, row = _tuning_job(ctx, params["HyperParameterTuningJobName"])
    pairs = tuning.trials(ctx.session, row.id)
    answer = _summary(ctx, tuner, row)
    del answer["Strategy"], answer["ResourceLimits"]
    request = tuner.request
    for key in ("HyperParameterTuningJobConfig", "TrainingJobDefinition", "WarmStartConfig"):
        if key in request:
            answer[key] = request[key]
    best = tuning.best(row, pairs)
    if best is not None and best[1] is not None:
        answer["BestTrainingJob"] = _trial_summary(ctx, tuner, row, best[0], best[1])
    if row.status == Status.FAILED.value and row.status_reason:
        answer["FailureReason"] = row.status_reason[:1024]
    end = _aware(row.ended_at) if row.ended_at else datetime.now(UTC)
    runtime = (end - _aware(row.created_at)).total_seconds()
    answer["ConsumedResources"] = {"RuntimeInSeconds": int(runtime)}
    return answer


@operation("ListHyperParameterTuningJobs")
def list_tuning_jobs(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    found: list[tuple[AwsResourceRow, TuningJobRow]] = []
    for tuner in aws_resources.listed(ctx.session, KIND):
        try:
            found.append((tuner, tuning.get_row(ctx.session, tuner.ref or tuner.name.lower())))
        except NotFound:
            continue
    fields: Fields[tuple[AwsResourceRow, TuningJobRow]] = Fields(
        name=lambda p: p[0].name,
        created=lambda p: p[1].created_at,
        status=lambda p: _status(p[1]),
        modified=lambda p: _modified(p[1], tuning.trials(ctx.session, p[1].id)),
    )
    kept, token = page(found, params, fields, default_sort="Name", default_order="Ascending")
    return {
        "HyperParameterTuningJobSummaries": [_summary(ctx, t, r) for t, r in kept],
        "NextToken": token,
    }


@operation("ListTrainingJobsForHyperParameterTuningJob")
def list_trials(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    tuner, row = _tuning_job(ctx, params["HyperParameterTuningJobName"])
    pairs = [(t, j) for t, j in tuning.trials(ctx.session, row.id) if j is not None]
    summaries = [_trial_summary(ctx, tuner, row, t, j) for t, j in pairs]
    objective = "FinalHyperParameterTuningJobObjectiveMetric"
    if params.get("SortBy") == "FinalObjectiveMetricValue":
        # as SageMaker: the training jobs without an objective value are not listed
        summaries = [s for s in summaries if objective in s]
    fields: Fields[dict[str, Any]] = Fields(
        name=lambda s: s["TrainingJobName"],
        created=lambda s: s["CreationTime"],
        status=lambda s: s["TrainingJobStatus"],
        sorts={"FinalObjectiveMetricValue": lambda s: s[objective]["Value"]},
    )
    kept, token = page(summaries, params, fields, default_sort="Name", default_order="Ascending")
    return {"TrainingJobSummaries": kept, "NextToken": token}


@operation("StopHyperParameterTuningJob")
def stop_tuning_job(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    _tuner, row = _tuning_job(ctx, params["HyperParameterTuningJobName"])
    if Status(row.status).terminal:
        raise _invalid(
            f"The tuning job is {STATUS[Status(row.status)]}; only an InProgress tuning job "
            "can be stopped."
        )
    tuning_service.request_stop(row)
    return {}
