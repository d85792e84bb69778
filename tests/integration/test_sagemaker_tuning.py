"""SageMaker hyperparameter tuning through boto3's own ``sagemaker`` client against a live
Naiad server (SQLite, then PostgreSQL): a tuning job's trials run as real training jobs of
a script-mode script, and show as SageMaker shows them."""

import time
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from naiad.testing.aws import AwsServer, aws  # noqa: F401 - the fixture
from naiad.testing.jobs import source_tarball

ROLE = "arn:aws:iam::111122223333:role/SageMakerRole"
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5-cpu-py311"

# A smooth bowl over lr (log scale), width and activation, approached step by step; best
# 1.0 at lr=0.01, width=3, gelu. Trials numbered bad_after and on score badly and slowly,
# so early stopping has something to stop (judged at a step the earlier trials reached).
OBJECTIVE = """
    import argparse, json, math, os, time
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--width", type=int, default=3)
    parser.add_argument("--act", default="gelu")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--pause", type=float, default=0.05)
    parser.add_argument("--bad_after", type=int, default=-1)
    args = parser.parse_args()
    job = json.loads(os.environ["SM_TRAINING_ENV"])["job_name"]
    trial = int(job.split("-")[-2])
    final = 1.0 - 0.15 * math.log10(args.lr / 0.01) ** 2 - 0.05 * (args.width - 3) ** 2
    final -= {"gelu": 0.0, "relu": 0.1, "tanh": 0.3}[args.act]
    pause = args.pause
    if 0 <= args.bad_after <= trial:
        final, pause = -5.0, 0.25
    print(f"trial {trial} lr={args.lr} width={args.width} act={args.act}", flush=True)
    for step in range(args.steps):
        print(f"step {step} score={final * (1.0 - math.exp(-(step + 1) / 2.0)):.6f}", flush=True)
        time.sleep(pause)
"""


@pytest.fixture(scope="module")
def bucket(aws: AwsServer) -> str:  # noqa: F811
    s3 = aws.client("s3")
    name = f"hpo-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    body = source_tarball({"objective.py": OBJECTIVE})
    s3.put_object(Bucket=name, Key="code/sourcedir.tar.gz", Body=body)
    return name


def ranges() -> dict[str, Any]:
    return {
        "ContinuousParameterRanges": [
            {"Name": "lr", "MinValue": "0.0001", "MaxValue": "1", "ScalingType": "Logarithmic"}
        ],
        "IntegerParameterRanges": [{"Name": "width", "MinValue": "1", "MaxValue": "6"}],
        "CategoricalParameterRanges": [{"Name": "act", "Values": ["relu", "gelu", "tanh"]}],
    }


def tuning_request(
    bucket: str, name: str, trials: int = 4, early: str = "Off", **static: str
) -> dict[str, Any]:
    """What the SageMaker Python SDK v2's HyperparameterTuner sends for a PyTorch estimator."""
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "score"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": trials, "MaxParallelTrainingJobs": 2},
            "ParameterRanges": ranges(),
            "TrainingJobEarlyStoppingType": early,
            "RandomSeed": 7,
        },
        "TrainingJobDefinition": {
            "StaticHyperParameters": {
                "sagemaker_program": '"objective.py"',
                "sagemaker_submit_directory": f'"s3://{bucket}/code/sourcedir.tar.gz"',
                "sagemaker_region": '"us-east-1"',
                **static,
            },
            "AlgorithmSpecification": {
                "TrainingImage": IMAGE,
                "TrainingInputMode": "File",
                "MetricDefinitions": [
                    {"Name": "score", "Regex": "score=(-?[0-9.]+)"},
                    {"Name": "step", "Regex": "step ([0-9]+) "},
                ],
            },
            "RoleArn": ROLE,
            "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/output"},
            "ResourceConfig": {
                "InstanceType": "ml.m5.large",
                "InstanceCount": 1,
                "VolumeSizeInGB": 5,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": 300},
        },
        "Tags": [{"Key": "team", "Value": "search"}],
    }


def wait(sm: Any, name: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
        if job["HyperParameterTuningJobStatus"] in ("Completed", "Failed", "Stopped"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.3)


def test_tuning_job_runs_its_trials_as_training_jobs(aws: AwsServer, bucket: str) -> None:  # noqa: F811
    sm = aws.client("sagemaker")
    arn = sm.create_hyper_parameter_tuning_job(**tuning_request(bucket, "Search-1"))[
        "HyperParameterTuningJobArn"
    ]
    assert arn.endswith(":hyper-parameter-tuning-job/search-1")
    job = wait(sm, "Search-1")
    assert job["HyperParameterTuningJobStatus"] == "Completed", job.get("FailureReason")
    assert job["TrainingJobStatusCounters"] == {
        "Completed": 4,
        "InProgress": 0,
        "RetryableError": 0,
        "NonRetryableError": 0,
        "Stopped": 0,
    }
    assert job["ObjectiveStatusCounters"] == {"Succeeded": 4, "Pending": 0, "Failed": 0}
    assert job["HyperParameterTuningJobConfig"]["ParameterRanges"] == ranges()
    assert job["CreationTime"] <= job["HyperParameterTuningEndTime"]
    best = job["BestTrainingJob"]
    tuned = best["TunedHyperParameters"]
    assert sorted(tuned) == ["act", "lr", "width"]
    assert 1e-4 <= float(tuned["lr"]) <= 1 and tuned["width"] in list("123456")
    assert tuned["act"] in ("relu", "gelu", "tanh")
    assert best["TuningJobName"] == "Search-1" and best["TrainingJobName"].startswith("search-1-")
    metric = best["FinalHyperParameterTuningJobObjectiveMetric"]
    assert metric["MetricName"] == "score" and metric["Type"] == "Maximize"

    trials = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="Search-1",
        SortBy="FinalObjectiveMetricValue",
        SortOrder="Descending",
    )["TrainingJobSummaries"]
    values = [t["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for t in trials]
    assert len(values) == 4 and values == sorted(values, reverse=True)
    assert trials[0]["TrainingJobName"] == best["TrainingJobName"]
    assert values[0] == pytest.approx(metric["Value"])
    assert {t["TrainingJobStatus"] for t in trials} == {"Completed"}
    assert {t["ObjectiveStatus"] for t in trials} == {"Succeeded"}
    by_name = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="Search-1", MaxResults=3
    )
    names = [t["TrainingJobName"] for t in by_name["TrainingJobSummaries"]]
    assert names == sorted(names) and by_name["NextToken"]

    listed = sm.list_training_jobs(NameContains="search-1-", MaxResults=100)
    assert sorted(t["TrainingJobName"] for t in listed["TrainingJobSummaries"]) == sorted(
        t["TrainingJobName"] for t in trials
    )
    described = sm.describe_training_job(TrainingJobName=best["TrainingJobName"])
    assert described["TrainingJobStatus"] == "Completed"
    assert described["TuningJobArn"] == arn
    assert described["HyperParameters"]["sagemaker_program"] == '"objective.py"'
    assert {k: described["HyperParameters"][k] for k in tuned} == tuned
    # as SageMaker adds it (and the script, parsing its arguments strictly, is not given it)
    assert described["HyperParameters"]["_tuning_objective_metric"] == "score"
    assert job["TrainingJobDefinition"]["StaticHyperParameters"]["_tuning_objective_metric"] == (
        "score"
    )
    final = {m["MetricName"]: m["Value"] for m in described["FinalMetricDataList"]}
    assert final["score"] == pytest.approx(metric["Value"], abs=1e-6) and final["step"] == 3
    model = described["ModelArtifacts"]["S3ModelArtifacts"]  # what best_estimator() deploys
    model_bucket, key = model.removeprefix("s3://").split("/", 1)
    # under S3OutputPath, in a folder named for the trial, as SageMaker puts it
    assert model_bucket == bucket
    assert key == f"output/{best['TrainingJobName']}/output/model.tar.gz"
    aws.client("s3").head_object(Bucket=model_bucket, Key=key)
    with pytest.raises(ClientError) as ended:
        sm.stop_training_job(TrainingJobName=best["TrainingJobName"])
    assert ended.value.response["Error"]["Code"] == "ValidationException"

    summaries = sm.list_hyper_parameter_tuning_jobs(NameContains="search")[
        "HyperParameterTuningJobSummaries"
    ]
    (summary,) = [s for s in summaries if s["HyperParameterTuningJobName"] == "Search-1"]
    assert summary["Strategy"] == "Bayesian" and summary["HyperParameterTuningJobStatus"] == (
        "Completed"
    )
    assert summary["TrainingJobStatusCounters"]["Completed"] == 4
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "search"}]
    trial_tags = sm.list_tags(ResourceArn=described["TrainingJobArn"])["Tags"]
    assert trial_tags == [{"Key": "team", "Value": "search"}]  # as AWS tags the trials

    # a warm start continues from the parent's trials
    child = tuning_request(bucket, "Search-1-warm", trials=1)
    child["WarmStartConfig"] = {
        "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": "Search-1"}],
        "WarmStartType": "IdenticalDataAndAlgorithm",
    }
    sm.create_hyper_parameter_tuning_job(**child)
    warm = wait(sm, "Search-1-warm")
    assert warm["HyperParameterTuningJobStatus"] == "Completed", warm.get("FailureReason")
    assert warm["WarmStartConfig"] == child["WarmStartConfig"]
    assert warm["TrainingJobStatusCounters"]["Completed"] == 1


def test_auto_early_stopping_stops_unpromising_trials(aws: AwsServer, bucket: str) -> None:  # noqa: F811
    sm = aws.client("sagemaker")
    request = tuning_request(
        bucket, "Pruned-1", trials=5, early="Auto", bad_after="3", steps="20", pause="0.02"
    )
    request["HyperParameterTuningJobConfig"]["Strategy"] = "Random"
    sm.create_hyper_parameter_tuning_job(**request)
    job = wait(sm, "Pruned-1")
    assert job["HyperParameterTuningJobStatus"] == "Completed", job.get("FailureReason")
    assert job["TrainingJobStatusCounters"]["Completed"] == 3
    assert job["TrainingJobStatusCounters"]["Stopped"] == 2
    best = job["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
    trials = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="Pruned-1", StatusEquals="Stopped"
    )["TrainingJobSummaries"]
    assert len(trials) == 2
    for trial in trials:
        assert trial["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] < min(best, 0)
        described = sm.describe_training_job(TrainingJobName=trial["TrainingJobName"])
        assert described["TrainingJobStatus"] == "Stopped"
        steps = {m["MetricName"]: m["Value"] for m in described["FinalMetricDataList"]}["step"]
        assert steps < 19  # stopped before its last step


def test_stop_tuning_job_stops_its_trials(aws: AwsServer, bucket: str) -> None:  # noqa: F811
    sm = aws.client("sagemaker")
    request = tuning_request(bucket, "Stops-1", trials=6, steps="400")
    sm.create_hyper_parameter_tuning_job(**request)
    deadline = time.monotonic() + 30
    while True:
        running = sm.list_training_jobs_for_hyper_parameter_tuning_job(
            HyperParameterTuningJobName="Stops-1", StatusEquals="InProgress"
        )["TrainingJobSummaries"]
        if len(running) == 2:
            break
        assert time.monotonic() < deadline
        time.sleep(0.2)
    first = running[0]["TrainingJobName"]
    sm.stop_training_job(TrainingJobName=first)  # one trial alone, as a training job
    sm.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName="Stops-1")
    assert sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="Stops-1")[
        "HyperParameterTuningJobStatus"
    ] in ("Stopping", "Stopped")
    job = wait(sm, "Stops-1")
    assert job["HyperParameterTuningJobStatus"] == "Stopped"
    counters = job["TrainingJobStatusCounters"]
    trials = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="Stops-1"
    )["TrainingJobSummaries"]
    seen = [(t["TrainingJobName"], t["TrainingJobStatus"], t.get("FailureReason")) for t in trials]
    assert counters["InProgress"] == 0 and counters["Stopped"] >= 2, (counters, seen)
    assert "BestTrainingJob" not in job
    assert sm.describe_training_job(TrainingJobName=first)["TrainingJobStatus"] == "Stopped"
    with pytest.raises(ClientError) as again:
        sm.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName="Stops-1")
    assert again.value.response["Error"]["Code"] == "ValidationException"
    stopped = sm.list_hyper_parameter_tuning_jobs(StatusEquals="Stopped")
    names = [s["HyperParameterTuningJobName"] for s in stopped["HyperParameterTuningJobSummaries"]]
    assert "Stops-1" in names and "Search-1" not in names


def refusal(sm: Any, request: dict[str, Any]) -> tuple[str, str]:
    with pytest.raises(ClientError) as refused:
        sm.create_hyper_parameter_tuning_job(**request)
    error = refused.value.response["Error"]
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return error["Code"], error["Message"]


def test_bad_requests_are_refused_with_a_reason(aws: AwsServer, bucket: str) -> None:  # noqa: F811
    sm = aws.client("sagemaker")

    def changed(config: dict[str, Any] | None = None, **top: Any) -> dict[str, Any]:
        request = tuning_request(bucket, "Bad-1")
        request["HyperParameterTuningJobConfig"].update(config or {})
        request.update(top)
        return request

    def with_range(kind: str, **fields: Any) -> dict[str, Any]:
        return changed({"ParameterRanges": {kind: [{"Name": "x", **fields}]}})

    cases = {
        "not a whole number": with_range("IntegerParameterRanges", MinValue="a", MaxValue="3"),
        "must be below MaxValue": with_range(
            "ContinuousParameterRanges", MinValue="2", MaxValue="1"
        ),
        "Logarithmic needs MinValue above 0": with_range(
            "ContinuousParameterRanges", MinValue="0", MaxValue="1", ScalingType="Logarithmic"
        ),
        "ReverseLogarithmic is not supported": with_range(
            "ContinuousParameterRanges",
            MinValue="0.1",
            MaxValue="0.9",
            ScalingType="ReverseLogarithmic",
        ),
        "lists a value more than once": with_range("CategoricalParameterRanges", Values=["a", "a"]),
        "ParameterRanges is empty": changed({"ParameterRanges": {}}),
        "Strategy is 'Annealing'; use one of Bayesian": changed({"Strategy": "Annealing"}),
        "is not one of the TrainingJobDefinition's": changed(
            {"HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "loss"}}
        ),
        "takes CategoricalParameterRanges and IntegerParameterRanges only": changed(
            {"Strategy": "Grid"}
        ),
        "must be Off with Strategy Hyperband": changed(
            {"Strategy": "Hyperband", "TrainingJobEarlyStoppingType": "Auto"}
        ),
        "TuningJobCompletionCriteria is not supported": changed(
            {"TuningJobCompletionCriteria": {"TargetObjectiveMetricValue": 0.9}}
        ),
        "the parent tuning job 'Never-Made' does not exist": changed(
            WarmStartConfig={
                "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": "Never-Made"}],
                "WarmStartType": "IdenticalDataAndAlgorithm",
            }
        ),
        "WarmStartType TransferLearning is not supported": changed(
            WarmStartConfig={
                "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": "Never-Made"}],
                "WarmStartType": "TransferLearning",
            }
        ),
        "MaxParallelTrainingJobs": changed(
            {"ResourceLimits": {"MaxNumberOfTrainingJobs": 2, "MaxParallelTrainingJobs": 101}}
        ),
        "is not valid": changed(HyperParameterTuningJobName="bad_name"),
    }
    for expected, request in cases.items():
        code, message = refusal(sm, request)
        assert code == "ValidationException" and expected in message, (expected, message)

    no_program = changed()
    del no_program["TrainingJobDefinition"]["StaticHyperParameters"]["sagemaker_program"]
    assert "sagemaker_program" in refusal(sm, no_program)[1]
    both = changed()
    both["TrainingJobDefinition"]["StaticHyperParameters"]["lr"] = "0.1"
    assert "both in StaticHyperParameters and tuned" in refusal(sm, both)[1]
    missing_code = changed()
    missing_code["TrainingJobDefinition"]["StaticHyperParameters"]["sagemaker_submit_directory"] = (
        f'"s3://{bucket}/code/missing.tar.gz"'
    )
    assert "does not exist" in refusal(sm, missing_code)[1]

    sm.create_hyper_parameter_tuning_job(**tuning_request(bucket, "Dup-1", trials=1))
    code, message = refusal(sm, tuning_request(bucket, "dup-1"))
    assert code == "ResourceInUse" and "already exists" in message
    assert wait(sm, "Dup-1")["HyperParameterTuningJobStatus"] == "Completed"

    with pytest.raises(ClientError) as absent:
        sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="never-made")
    assert absent.value.response["Error"]["Code"] == "ResourceNotFound"
    with pytest.raises(ClientError) as no_trial:
        sm.describe_training_job(TrainingJobName="dup-1-009-00000000")
    assert no_trial.value.response["Error"]["Code"] == "ValidationException"
