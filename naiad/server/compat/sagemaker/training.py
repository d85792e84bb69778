"""Training jobs: ``CreateTrainingJob`` and friends over Naiad jobs.

A SageMaker training job is a Naiad job named as it is in lower case (SageMaker's names
are unique regardless of case), so it shows in the console, CLI and SDK like any other.
Two things run: script mode, the ``sagemaker_program`` in the ``sagemaker_submit_directory``
archive the SageMaker Python SDK v2 uploads, with the hyperparameters as the training
toolkit gives them; or a command, ``ContainerEntrypoint`` + ``ContainerArguments``, as the
SDK v3's ``ModelTrainer`` sends them, with ``/opt/ml`` naming the job's own directory.
The trials of a tuning job made through this API (``tuning.py``) are training jobs here
too, under their Naiad names, described from the tuning job's ``TrainingJobDefinition``.
"""

import hashlib
import io
import json
import tarfile
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from naiad.core.errors import InvalidInput, NotFound
from naiad.core.status import Status
from naiad.schemas.jobs import JobCreate
from naiad.server.compat.awsjson import AwsError, Context, in_use, not_found
from naiad.server.compat.listing import Fields, page
from naiad.server.compat.sagemaker.images import framework
from naiad.server.compat.sagemaker.instances import placement
from naiad.server.compat.sagemaker.operations import arn, operation, tag_dict
from naiad.services import jobs as job_service
from naiad.store import aws_resources, jobs, runs, tuning
from naiad.store.artifacts import safe_path
from naiad.store.artifacts.buckets import locate, s3_uri, split, store_path, writable_path
from naiad.store.tables import AwsResourceRow, JobRow, TuningTrialRow

KIND = "TrainingJob"
TUNING_KIND = "HyperParameterTuningJob"
M = TypeVar("M", bound=BaseModel)
# The SageMaker Python SDK v3's channel of driver scripts, which name /opt/ml paths.
SDK_DRIVERS = "sm_drivers"
MAX_SOURCE_BYTES = 256 * 1024 * 1024
# Hyperparameters for the container, not the script: the SageMaker Python SDK's, and the
# one a tuning job adds (the training toolkit drops them too).
_SDK_KEYS = (
    "sagemaker_program",
    "sagemaker_submit_directory",
    "sagemaker_region",
    "sagemaker_container_log_level",
    "sagemaker_job_name",
    "sagemaker_estimator_class_name",
    "sagemaker_estimator_module",
    "_tuning_objective_metric",  # what a tuning job adds to its trials' hyperparameters
)
_DISTRIBUTED = (
    "sagemaker_torch_distributed_enabled",
    "sagemaker_pytorch_ddp_enabled",
    "sagemaker_distributed_dataparallel_enabled",
)
STATUS = {
    Status.PENDING: ("InProgress", "Starting"),
    Status.STARTING: ("InProgress", "Downloading"),
    Status.RUNNING: ("InProgress", "Training"),
    Status.STOPPING: ("Stopping", "Stopping"),
    Status.COMPLETED: ("Completed", "Completed"),
    Status.FAILED: ("Failed", "Failed"),
    Status.STOPPED: ("Stopped", "Stopped"),
}
_MESSAGES = {
    "Starting": "Preparing the instances for training",
    "Downloading": "Downloading input data and the training code",
    "Training": "Training image download completed. Training in progress.",
    "Completed": "Training job completed",
    "Stopping": "Stopping the training job",
    "Stopped": "Training job stopped",
}


def _hp_text(value: str) -> str:
    """The SDK JSON-encodes every hyperparameter: ``"\\"train.py\\""`` -> ``train.py``."""
    try:
        decoded = json.loads(value)
    except ValueError:
        return value
    return decoded if isinstance(decoded, str) else value


def _copy_source(ctx: Context, uri: str) -> str:
    """The ``sourcedir.tar.gz`` copied into ``sources/`` by content, as the SDK's own
    uploads are: a job's code never changes under it when the bucket does."""
    settings = ctx.state.settings
    try:
        store, path = locate(uri, ctx.state.artifacts, settings.s3_endpoint_url)
        if store.size(path) > MAX_SOURCE_BYTES:
            raise AwsError(
                "ValidationException",
                f"{uri} is over {MAX_SOURCE_BYTES // 2**20} MiB; keep data out of the source "
                "directory and pass it as an input channel.",
            )
        data = store.get_bytes(path)
    except FileNotFoundError:
        raise AwsError(
            "ValidationException", f"sagemaker_submit_directory {uri} does not exist."
        ) from None
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            tar.getmembers()
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise AwsError(
            "ValidationException",
            f"sagemaker_submit_directory {uri} is not a readable .tar.gz ({exc}).",
        ) from None
    target = f"sources/{hashlib.sha256(data).hexdigest()[:32]}.tar.gz"
    if not ctx.state.artifacts.exists(target):
        ctx.state.artifacts.put_bytes(target, data)
    return target


_DEFAULT_OPTIONS = {
    "distribution": "FullyReplicated",
    "input_mode": "File",
    "compression": "None",
    "record_wrapper": "None",
}
MAX_MANIFEST_BYTES = 64 * 1024 * 1024


def _manifest_prefix(ctx: Context, channel: str, uri: str) -> str:
    """The prefix a SageMaker manifest names, its keys checked now rather than at staging:
    ``[{"prefix": "s3://bucket/folder/"}, "key-1", "sub/key-2", ...]``."""
    store, path = locate(uri, ctx.state.artifacts, ctx.state.settings.s3_endpoint_url)
    problem = None
    try:
        if store.size(path) > MAX_MANIFEST_BYTES:
            problem = f"is over {MAX_MANIFEST_BYTES // 2**20} MiB"
        else:
            entries = json.loads(store.get_bytes(path))
            head = entries[0] if isinstance(entries, list) and entries else None
            if not isinstance(head, dict) or not isinstance(head.get("prefix"), str):
                problem = 'does not start with {"prefix": "s3://bucket/folder/"}'
            elif not all(isinstance(k, str) for k in entries[1:]) or len(entries) < 2:
                problem = "lists no keys (strings after the prefix)"
            else:
                for key in entries[1:]:
                    safe_path(key)
                split(head["prefix"])
                return str(head["prefix"])
    except FileNotFoundError:
        problem = "does not exist"
    except ValueError as exc:
        problem = f"is not a JSON manifest ({exc})"
    except InvalidInput as exc:
        problem = f"lists a key Naiad refuses: {exc.message}"
    raise AwsError("ValidationException", f"Channel {channel!r}: the manifest {uri} {problem}.")


def _channels(ctx: Context, params: dict[str, Any], mode: str) -> tuple[dict, dict]:
    inputs: dict[str, str] = {}
    options: dict[str, dict[str, Any]] = {}
    for channel in params.get("InputDataConfig", []):
        name = channel["ChannelName"]
        source = channel["DataSource"].get("S3DataSource")
        if source is None:
            raise AwsError(
                "ValidationException",
                f"Channel {name!r}: Naiad reads S3DataSource channels only (S3Prefix or "
                "ManifestFile); copy file-system data into a bucket first.",
            )
        if source["S3DataType"] not in ("S3Prefix", "ManifestFile"):
            raise AwsError(
                "ValidationException",
                f"Channel {name!r}: S3DataType {source['S3DataType']} is not supported; use "
                "S3Prefix or ManifestFile.",
            )
        channel_mode = channel.get("InputMode", mode)
        if channel_mode == "Pipe":
            raise AwsError(
                "ValidationException",
                f"Channel {name!r}: Pipe mode is not supported; use File or FastFile.",
            )
        option: dict[str, Any] = {}
        if source["S3DataType"] == "ManifestFile":
            prefix = _manifest_prefix(ctx, name, source["S3Uri"])
            inputs[name] = store_path(prefix, ctx.state.artifacts.uri)
            option["manifest"] = store_path(source["S3Uri"], ctx.state.artifacts.uri)
        else:
            inputs[name] = store_path(source["S3Uri"], ctx.state.artifacts.uri)
        option |= {
            "distribution": source.get("S3DataDistributionType", "FullyReplicated"),
            "input_mode": channel_mode,
            "compression": channel.get("CompressionType", "None"),
            "record_wrapper": channel.get("RecordWrapperType", "None"),
        }
        if "ContentType" in channel:
            option["content_type"] = channel["ContentType"]
        if option != _DEFAULT_OPTIONS:
            options[name] = option
    return inputs, options


def _script(ctx: Context, raw: dict[str, str]) -> tuple[dict[str, Any], bool]:
    """Script mode: the fields that run ``sagemaker_program`` from its source archive, and
    whether the SDK asked for torch.distributed."""
    program = _hp_text(raw.get("sagemaker_program", ""))
    submit_dir = _hp_text(raw.get("sagemaker_submit_directory", ""))
    if not program or not submit_dir.startswith("s3://"):
        raise AwsError(
            "ValidationException",
            "Naiad runs a script from its source archive, or a command: set the "
            "hyperparameters sagemaker_program (the script, e.g. train.py) and "
            "sagemaker_submit_directory (the s3:// URI of its sourcedir.tar.gz), as the "
            "SageMaker Python SDK v2 does, or AlgorithmSpecification.ContainerEntrypoint.",
        )
    distributed = any(_hp_text(raw.get(k, "false")).lower() == "true" for k in _DISTRIBUTED)
    hyperparameters = {
        k: v for k, v in raw.items() if k not in _SDK_KEYS and not k.startswith("sagemaker_")
    }
    fields = {
        "entrypoint": program,
        "source_uri": _copy_source(ctx, submit_dir),
        "hyperparameters": hyperparameters,
    }
    return fields, distributed


def _command(algorithm: dict[str, Any], raw: dict[str, str]) -> dict[str, Any]:
    """A container's entrypoint and arguments, run as one command per host; its
    hyperparameters reach it as a container's do, in hyperparameters.json (and SM_HPS)."""
    if "ContainerEntrypoint" not in algorithm:
        raise AwsError(
            "ValidationException",
            "AlgorithmSpecification.ContainerArguments needs ContainerEntrypoint: Naiad runs "
            "no image whose own entrypoint could take them; give the program to run.",
        )
    command = [*algorithm["ContainerEntrypoint"], *algorithm.get("ContainerArguments", [])]
    return {"command": command, "hyperparameters": raw}


def resource_config(definition: dict[str, Any]) -> dict[str, Any]:
    """A request's ``ResourceConfig``; a tuning job's definition may give its instances as
    ``HyperParameterTuningResourceConfig`` instead (the first of its ``InstanceConfigs``)."""
    if "ResourceConfig" in definition:
        return dict(definition["ResourceConfig"])
    tuning = definition.get("HyperParameterTuningResourceConfig", {})
    first = (tuning.get("InstanceConfigs") or [tuning])[0]
    keys = ("InstanceType", "InstanceCount", "VolumeSizeInGB")
    return {k: first[k] for k in keys if k in first}


def job_fields(ctx: Context, params: dict[str, Any], job_name: str | None) -> dict[str, Any]:
    """The ``JobTemplate`` fields of a training-job-shaped request: ``CreateTrainingJob``'s,
    or a tuning job's ``TrainingJobDefinition`` (its ``StaticHyperParameters`` given as
    ``HyperParameters``). ``job_name``: the SageMaker name a container finds in
    ``TRAINING_JOB_NAME``; None for a tuning job's trials, which share one template."""
    algorithm = params["AlgorithmSpecification"]
    raw = dict(params.get("HyperParameters", {}))
    distributed = False
    if "ContainerEntrypoint" in algorithm or "ContainerArguments" in algorithm:
        what = _command(algorithm, raw)
    else:
        what, distributed = _script(ctx, raw)
    resources = resource_config(params)
    place = placement(resources.get("InstanceType", ""), distributed)
    inputs, options = _channels(ctx, params, algorithm.get("TrainingInputMode", "File"))
    experiment = params.get("ExperimentConfig", {}).get("ExperimentName", "sagemaker")
    environment = dict(params.get("Environment", {}))
    if job_name is not None:  # what a SageMaker container finds (the SDK v3's drivers read it)
        environment |= {"TRAINING_JOB_NAME": job_name, "TRAINING_JOB_ARN": arn(ctx, KIND, job_name)}
    fields: dict[str, Any] = {
        **what,
        "experiment": experiment,
        "inputs": inputs,
        "nodes": resources.get("InstanceCount", 1),
        "processes_per_node": place.processes,
        "gpus": place.gpus,
        "metric_definitions": [
            {"name": d["Name"], "regex": d["Regex"]} for d in algorithm.get("MetricDefinitions", [])
        ],
        "environment": environment,
    }
    if "command" in what and SDK_DRIVERS in inputs:
        fields["opt_ml_channels"] = [SDK_DRIVERS]
    image = framework(algorithm.get("TrainingImage", ""), ctx.state.settings.sagemaker_images)
    if image in ("pytorch", "tensorflow"):  # the image says what the script runs on
        fields["framework"] = image
    stopping = params.get("StoppingCondition", {})
    if "MaxRuntimeInSeconds" in stopping:
        fields["max_runtime_s"] = stopping["MaxRuntimeInSeconds"]
    if options:
        fields["channels"] = options
    if "CheckpointConfig" in params:
        fields["checkpoint_uri"] = writable_path(
            params["CheckpointConfig"]["S3Uri"], ctx.state.artifacts.uri
        )
    return fields


def validated(model: type[M], fields: dict[str, Any], where: str = "") -> M:
    """``model`` made of ``fields``, or a ValidationException naming what is wrong."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        problems = "; ".join(
            f"{where}{'.'.join(map(str, e['loc'])) or 'value'}: "
            f"{e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise AwsError("ValidationException", problems) from None


def output_root(ctx: Context, params: dict[str, Any]) -> str:
    """``OutputDataConfig.S3OutputPath`` as a folder of the store, under which each job
    writes ``<job name>/output/model.tar.gz``."""
    output = params["OutputDataConfig"]["S3OutputPath"].rstrip("/")
    return writable_path(output, ctx.state.artifacts.uri)


def _job_create(ctx: Context, params: dict[str, Any], naiad_name: str) -> tuple[JobCreate, str]:
    fields = job_fields(ctx, params, params["TrainingJobName"])
    output_uri = f"{output_root(ctx, params)}/{params['TrainingJobName']}/output"
    return validated(JobCreate, {**fields, "name": naiad_name}), output_uri


@operation("CreateTrainingJob")
def create_training_job(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    name = params["TrainingJobName"]
    naiad_name = name.lower()
    taken = aws_resources.find(ctx.session, KIND, name)
    try:
        jobs.get_row(ctx.session, naiad_name)
        exists = True
    except NotFound:
        exists = False
    if taken is not None or exists:
        raise in_use(
            f"Training job names must be unique within an AWS account and region, and a "
            f"training job with this name already exists ({arn(ctx, KIND, name)})"
        )
    body, output_uri = _job_create(ctx, params, naiad_name)
    state = ctx.state
    try:
        row = job_service.submit(
            ctx.session, body, state.artifacts, state.slots, state.executor.nodes, output_uri
        )
    except InvalidInput as exc:
        raise AwsError("ValidationException", exc.message) from None
    request = {k: v for k, v in params.items() if k != "Tags"}
    request["_framework"] = framework(
        params["AlgorithmSpecification"].get("TrainingImage", ""),
        state.settings.sagemaker_images,
    )
    aws_resources.create(
        ctx.session, KIND, name, request, tag_dict(params.get("Tags")), ref=row.name
    )
    return {"TrainingJobArn": arn(ctx, KIND, name)}


@dataclass(frozen=True)
class Seen:
    """A training job as SageMaker's API shows it: its name there, the request it was made
    of, and the Naiad job it is."""

    name: str
    request: dict[str, Any]
    job: JobRow


def hp_strings(params: dict[str, Any]) -> dict[str, str]:
    """Hyperparameter values as SageMaker shows them: strings (non-strings JSON-encoded)."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}


def _trial(ctx: Context, tuner: AwsResourceRow, trial: TuningTrialRow, job: JobRow) -> Seen:
    """A trial of a tuning job made through this API, as the training job SageMaker would
    have made of its ``TrainingJobDefinition``: named as Naiad named its job."""
    definition = tuner.request.get("TrainingJobDefinition", {})
    static = definition.get("StaticHyperParameters", {})
    request = {
        **definition,
        "TrainingJobName": job.name,
        "HyperParameters": {**static, **hp_strings(trial.params)},
        "ResourceConfig": resource_config(definition),
        "TuningJobArn": arn(ctx, TUNING_KIND, tuner.name),
    }
    return Seen(job.name, request, job)


def _trials(ctx: Context, name: str | None = None) -> list[Seen]:
    """The trials of the tuning jobs made through this API (those of one, when its Naiad
    name is given), each as a training job."""
    found: list[Seen] = []
    for tuner in aws_resources.listed(ctx.session, TUNING_KIND):
        if name is not None and tuner.ref != name:
            continue
        try:
            row = tuning.get_row(ctx.session, tuner.ref or tuner.name.lower())
        except NotFound:
            continue
        pairs = tuning.trials(ctx.session, row.id)
        found += [_trial(ctx, tuner, t, j) for t, j in pairs if j is not None]
    return found


def trial_named(ctx: Context, name: str) -> tuple[AwsResourceRow, Seen] | None:
    """The trial of that name of a tuning job made through this API: the tuning job's row
    (whose tags its trials carry, as on AWS) and the trial as a training job."""
    try:
        job = jobs.get_row(ctx.session, name.lower())
    except NotFound:
        return None
    found = tuning.trial_of_job(ctx.session, job.id)
    if found is None:
        return None
    trial, row = found
    for tuner in aws_resources.listed(ctx.session, TUNING_KIND):
        if tuner.ref == row.name:
            return tuner, _trial(ctx, tuner, trial, job)
    return None


def _job(ctx: Context, name: str) -> Seen:
    row = aws_resources.find(ctx.session, KIND, name)
    if row is None:
        trial = trial_named(ctx, name)
        if trial is None:
            raise not_found("Requested resource not found.")
        return trial[1]
    try:
        return Seen(row.name, row.request, jobs.get_row(ctx.session, row.ref or name.lower()))
    except NotFound:
        raise not_found(
            f"Training job {name} was deleted from Naiad (its run was deleted)."
        ) from None


def _seconds(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return max(1, int((end - start).total_seconds()))


def _final_metrics(ctx: Context, job: JobRow) -> list[dict[str, Any]]:
    run = runs.get(ctx.session, job.run_id)
    defined = [d.name for d in job.spec.metric_definitions] or sorted(run.metrics)
    out = []
    for key in defined:
        summary = run.metrics.get(key)
        if summary is not None and isinstance(summary.value, int | float):
            out.append(
                {"MetricName": key, "Value": float(summary.value), "Timestamp": summary.timestamp}
            )
    return out


@operation("DescribeTrainingJob")
def describe_training_job(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    seen = _job(ctx, params["TrainingJobName"])
    job, request = seen.job, seen.request
    schema = jobs.to_schema(ctx.session, job)
    status, secondary = STATUS[Status(job.status)]
    answer: dict[str, Any] = {
        key: request[key]
        for key in (
            "TrainingJobName", "HyperParameters", "AlgorithmSpecification", "RoleArn",
            "InputDataConfig", "OutputDataConfig", "ResourceConfig", "VpcConfig",
            "StoppingCondition", "EnableNetworkIsolation", "EnableInterContainerTrafficEncryption",
            "EnableManagedSpotTraining", "CheckpointConfig", "DebugHookConfig",
            "ExperimentConfig", "Environment", "RetryStrategy", "ProfilerConfig",
            "TuningJobArn",
        )
        if key in request
    }  # fmt: skip
    if (
        "OutputDataConfig" in answer
    ):  # AWS describes it with an empty key (the SDK's attach reads it)
        answer["OutputDataConfig"] = {"KmsKeyId": "", **answer["OutputDataConfig"]}
    answer.update(
        TrainingJobArn=arn(ctx, KIND, seen.name),
        TrainingJobStatus=status,
        SecondaryStatus=secondary,
        CreationTime=job.created_at,
        LastModifiedTime=schema.transitions[-1].at if schema.transitions else job.created_at,
        TrainingStartTime=job.started_at,
        TrainingEndTime=job.ended_at,
        TrainingTimeInSeconds=_seconds(job.started_at, job.ended_at),
        BillableTimeInSeconds=_seconds(job.started_at, job.ended_at),
        FinalMetricDataList=_final_metrics(ctx, job),
        ModelArtifacts={"S3ModelArtifacts": ""},
    )
    if job.status == Status.COMPLETED.value:
        path = f"{job.spec.output_uri}/model.tar.gz"
        answer["ModelArtifacts"] = {"S3ModelArtifacts": s3_uri(path, ctx.state.artifacts.uri)}
    if job.status == Status.FAILED.value and job.status_reason:
        answer["FailureReason"] = job.status_reason
    transitions: list[dict[str, Any]] = []
    for t in schema.transitions:
        step = STATUS[Status(t.status)][1]
        if transitions and transitions[-1]["Status"] == step:
            continue
        if transitions:
            transitions[-1]["EndTime"] = t.at
        message = t.reason if step == "Failed" else _MESSAGES.get(step, t.reason or step)
        transitions.append({"Status": step, "StartTime": t.at, "StatusMessage": message})
    answer["SecondaryStatusTransitions"] = transitions
    return answer


def _summary(ctx: Context, seen: Seen) -> dict[str, Any]:
    job = seen.job
    return {
        "TrainingJobName": seen.name,
        "TrainingJobArn": arn(ctx, KIND, seen.name),
        "CreationTime": job.created_at,
        "TrainingEndTime": job.ended_at,
        "LastModifiedTime": job.ended_at or job.started_at or job.created_at,
        "TrainingJobStatus": STATUS[Status(job.status)][0],
        "SecondaryStatus": STATUS[Status(job.status)][1],
    }


@operation("ListTrainingJobs")
def list_training_jobs(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """The jobs made through this API: by CreateTrainingJob, or as a tuning job's trials."""
    rows = aws_resources.listed(ctx.session, KIND)
    by_name = {j.name: j for j in jobs.list_all(ctx.session, limit=100_000)}
    made = [Seen(r.name, r.request, by_name[r.ref]) for r in rows if r.ref in by_name]
    fields: Fields[Seen] = Fields(
        name=lambda s: s.name,
        created=lambda s: s.job.created_at,
        status=lambda s: STATUS[Status(s.job.status)][0],
        modified=lambda s: s.job.ended_at or s.job.started_at or s.job.created_at,
    )
    kept, token = page([*made, *_trials(ctx)], params, fields)
    return {"TrainingJobSummaries": [_summary(ctx, s) for s in kept], "NextToken": token}


@operation("StopTrainingJob")
def stop_training_job(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    job = _job(ctx, params["TrainingJobName"]).job
    if Status(job.status).terminal:
        raise AwsError(
            "ValidationException",
            f"The training job is {STATUS[Status(job.status)][0]}; only an InProgress job "
            "can be stopped.",
        )
    jobs.request_stop(job)
    return {}
