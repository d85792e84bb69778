"""Training jobs: ``CreateTrainingJob`` and friends over Naiad jobs.

A SageMaker training job is a Naiad job named as it is in lower case (SageMaker's names
are unique regardless of case), so it shows in the console, CLI and SDK like any other.
Two things run: script mode, the ``sagemaker_program`` in the ``sagemaker_submit_directory``
archive the SageMaker Python SDK v2 uploads, with the hyperparameters as the training
toolkit gives them; or a command, ``ContainerEntrypoint`` + ``ContainerArguments``, as the
SDK v3's ``ModelTrainer`` sends them, with ``/opt/ml`` naming the job's own directory.
"""

import hashlib
import io
import json
import tarfile
import zlib
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from naiad.core.errors import InvalidInput, NotFound
from naiad.core.status import Status
from naiad.schemas.jobs import JobCreate
from naiad.server.compat.awsjson import AwsError, Context, in_use, not_found
from naiad.server.compat.listing import Fields, page
from naiad.server.compat.sagemaker.images import framework
from naiad.server.compat.sagemaker.instances import placement
from naiad.server.compat.sagemaker.operations import arn, operation, resource, tag_dict
from naiad.services import jobs as job_service
from naiad.store import aws_resources, jobs, runs
from naiad.store.artifacts import safe_path
from naiad.store.artifacts.buckets import locate, s3_uri, split, store_path, writable_path
from naiad.store.tables import AwsResourceRow, JobRow

KIND = "TrainingJob"
# The SageMaker Python SDK v3's channel of driver scripts, which name /opt/ml paths.
SDK_DRIVERS = "sm_drivers"
MAX_SOURCE_BYTES = 256 * 1024 * 1024
# Hyperparameters the SageMaker Python SDK sets for the container, not for the script.
_SDK_KEYS = (
    "sagemaker_program",
    "sagemaker_submit_directory",
    "sagemaker_region",
    "sagemaker_container_log_level",
    "sagemaker_job_name",
    "sagemaker_estimator_class_name",
    "sagemaker_estimator_module",
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


def _job_create(ctx: Context, params: dict[str, Any], naiad_name: str) -> tuple[JobCreate, str]:
    algorithm = params["AlgorithmSpecification"]
    raw = dict(params.get("HyperParameters", {}))
    distributed = False
    if "ContainerEntrypoint" in algorithm or "ContainerArguments" in algorithm:
        what = _command(algorithm, raw)
    else:
        what, distributed = _script(ctx, raw)
    resources = params["ResourceConfig"]
    place = placement(resources.get("InstanceType", ""), distributed)
    inputs, options = _channels(ctx, params, algorithm.get("TrainingInputMode", "File"))
    experiment = params.get("ExperimentConfig", {}).get("ExperimentName", "sagemaker")
    fields: dict[str, Any] = {
        **what,
        "name": naiad_name,
        "experiment": experiment,
        "inputs": inputs,
        "nodes": resources.get("InstanceCount", 1),
        "processes_per_node": place.processes,
        "gpus": place.gpus,
        "metric_definitions": [
            {"name": d["Name"], "regex": d["Regex"]} for d in algorithm.get("MetricDefinitions", [])
        ],
        # what a SageMaker container finds in its environment (the SDK v3's drivers read it)
        "environment": {
            **params.get("Environment", {}),
            "TRAINING_JOB_NAME": params["TrainingJobName"],
            "TRAINING_JOB_ARN": arn(ctx, KIND, params["TrainingJobName"]),
        },
    }
    if "command" in what and SDK_DRIVERS in inputs:
        fields["opt_ml_channels"] = [SDK_DRIVERS]
    stopping = params.get("StoppingCondition", {})
    if "MaxRuntimeInSeconds" in stopping:
        fields["max_runtime_s"] = stopping["MaxRuntimeInSeconds"]
    if options:
        fields["channels"] = options
    if "CheckpointConfig" in params:
        fields["checkpoint_uri"] = writable_path(
            params["CheckpointConfig"]["S3Uri"], ctx.state.artifacts.uri
        )
    output = params["OutputDataConfig"]["S3OutputPath"].rstrip("/")
    output_root = writable_path(output, ctx.state.artifacts.uri)
    output_uri = f"{output_root}/{params['TrainingJobName']}/output"
    try:
        return JobCreate.model_validate(fields), output_uri
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise AwsError("ValidationException", problems) from None


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


def _job(ctx: Context, name: str) -> tuple[AwsResourceRow, JobRow]:
    row = resource(ctx, KIND, name, "Requested resource not found.")
    try:
        return row, jobs.get_row(ctx.session, row.ref or name.lower())
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
    row, job = _job(ctx, params["TrainingJobName"])
    schema = jobs.to_schema(ctx.session, job)
    status, secondary = STATUS[Status(job.status)]
    request = row.request
    answer: dict[str, Any] = {
        key: request[key]
        for key in (
            "TrainingJobName", "HyperParameters", "AlgorithmSpecification", "RoleArn",
            "InputDataConfig", "OutputDataConfig", "ResourceConfig", "VpcConfig",
            "StoppingCondition", "EnableNetworkIsolation", "EnableInterContainerTrafficEncryption",
            "EnableManagedSpotTraining", "CheckpointConfig", "DebugHookConfig",
            "ExperimentConfig", "Environment", "RetryStrategy", "ProfilerConfig",
        )
        if key in request
    }  # fmt: skip
    answer.update(
        TrainingJobArn=arn(ctx, KIND, row.name),
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


def _summary(ctx: Context, pair: tuple[AwsResourceRow, JobRow]) -> dict[str, Any]:
    row, job = pair
    return {
        "TrainingJobName": row.name,
        "TrainingJobArn": arn(ctx, KIND, row.name),
        "CreationTime": job.created_at,
        "TrainingEndTime": job.ended_at,
        "LastModifiedTime": job.ended_at or job.started_at or job.created_at,
        "TrainingJobStatus": STATUS[Status(job.status)][0],
        "SecondaryStatus": STATUS[Status(job.status)][1],
    }


@operation("ListTrainingJobs")
def list_training_jobs(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    rows = aws_resources.listed(ctx.session, KIND)
    by_name = {j.name: j for j in jobs.list_all(ctx.session, limit=100_000)}
    pairs = [(r, by_name[r.ref]) for r in rows if r.ref in by_name]
    fields: Fields[tuple[AwsResourceRow, JobRow]] = Fields(
        name=lambda p: p[0].name,
        created=lambda p: p[1].created_at,
        status=lambda p: STATUS[Status(p[1].status)][0],
        modified=lambda p: p[1].ended_at or p[1].started_at or p[1].created_at,
    )
    kept, token = page(pairs, params, fields)
    return {"TrainingJobSummaries": [_summary(ctx, p) for p in kept], "NextToken": token}


@operation("StopTrainingJob")
def stop_training_job(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    _row, job = _job(ctx, params["TrainingJobName"])
    if Status(job.status).terminal:
        raise AwsError(
            "ValidationException",
            f"The training job is {STATUS[Status(job.status)][0]}; only an InProgress job "
            "can be stopped.",
        )
    jobs.request_stop(job)
    return {}
