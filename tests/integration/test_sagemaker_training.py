"""SageMaker training through boto3's own ``sagemaker`` and ``s3`` clients, against a live
Naiad server on SQLite and on PostgreSQL: what a user's existing code calls, unchanged."""

import contextlib
import io
import json
import re
import tarfile
import time
import uuid
from typing import Any

import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, WaiterError

from naiad.testing.aws import AwsServer, aws  # noqa: F401 - the fixture
from naiad.testing.jobs import source_tarball

ROLE = "arn:aws:iam::111122223333:role/SageMakerRole"
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5-cpu-py311"

TRAIN = """
    import argparse, json, os, sys
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--lr", type=float)
    args = parser.parse_args()
    rows = open(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "train.csv")).read().split()
    print(f"rows {len(rows)} color {os.environ.get('COLOR')}")
    for channel in json.loads(os.environ["SM_CHANNELS"]):
        folder = os.environ["SM_CHANNEL_" + channel.upper()]
        print("channel", channel, sorted(os.listdir(folder)))
    hps = json.load(open("/".join([os.environ["SM_INPUT_CONFIG_DIR"], "hyperparameters.json"])))
    print("hps", sorted(hps))
    for epoch in range(args.epochs):
        print(f"epoch {epoch} train_loss={1.0 / (epoch + 1):.4f}")
    if os.environ.get("FAIL"):
        with open(os.path.join(os.environ["SM_OUTPUT_DIR"], "failure"), "w") as f:
            f.write("the learning rate is too high for this data")
        sys.exit(3)
    checkpoints = os.environ["NAIAD_CHECKPOINT_DIR"]
    print("restored", sorted(os.listdir(checkpoints)))
    if os.environ.get("CHECKPOINT"):
        with open(os.path.join(checkpoints, os.environ["CHECKPOINT"]), "w") as f:
            f.write("state")
    if os.environ.get("SLEEP"):
        import time
        time.sleep(120)
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w") as f:
        f.write(f"lr={args.lr}")
"""


def sourcedir(script: str) -> bytes:
    return source_tarball({"train.py": script})


@pytest.fixture(scope="module")
def bucket(aws: AwsServer) -> str:  # noqa: F811
    s3 = aws.client("s3")
    name = f"sm-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key="code/sourcedir.tar.gz", Body=sourcedir(TRAIN))
    s3.put_object(Bucket=name, Key="data/train/train.csv", Body=b"1,2\n3,4\n5,6\n")
    return name


def job_request(bucket: str, name: str, **changes: Any) -> dict[str, Any]:
    """What the SageMaker Python SDK's PyTorch estimator sends (v2 script mode)."""
    request: dict[str, Any] = {
        "TrainingJobName": name,
        "RoleArn": ROLE,
        "AlgorithmSpecification": {
            "TrainingImage": IMAGE,
            "TrainingInputMode": "File",
            "MetricDefinitions": [{"Name": "train:loss", "Regex": "train_loss=([0-9.]+)"}],
        },
        "HyperParameters": {
            "epochs": "3",
            "lr": "0.05",
            "sagemaker_program": '"train.py"',
            "sagemaker_submit_directory": f'"s3://{bucket}/code/sourcedir.tar.gz"',
            "sagemaker_region": '"us-east-1"',
        },
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": f"s3://{bucket}/data/train",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/output"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        "Environment": {"COLOR": "blue"},
        "Tags": [{"Key": "team", "Value": "vision"}],
    }
    request.update(changes)
    return request


def wait(sm: Any, name: str) -> dict[str, Any]:
    waiter = sm.get_waiter("training_job_completed_or_stopped")
    with contextlib.suppress(WaiterError):  # a Failed job ends the wait with an error
        waiter.wait(TrainingJobName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    return sm.describe_training_job(TrainingJobName=name)


def test_training_job_runs_as_sagemaker_describes_it(aws: AwsServer, bucket: str) -> None:  # noqa: F811
    sm, s3 = aws.client("sagemaker"), aws.client("s3")
    arn = sm.create_training_job(**job_request(bucket, "Digits-1"))["TrainingJobArn"]
    assert arn.startswith("arn:aws:sagemaker:us-east-1:") and arn.endswith(":training-job/digits-1")
    assert sm.describe_training_job(TrainingJobName="Digits-1")["TrainingJobStatus"] in (
        "InProgress",
        "Completed",
    )
    job = wait(sm, "Digits-1")
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert job["SecondaryStatus"] == "Completed"
    steps = [t["Status"] for t in job["SecondaryStatusTransitions"]]
    assert steps[-1] == "Completed" and "Training" in steps
    metrics = {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}
    assert metrics == {"train:loss": pytest.approx(0.3333)}
    assert job["HyperParameters"]["epochs"] == "3"
    assert job["TrainingStartTime"] <= job["TrainingEndTime"]
    assert job["BillableTimeInSeconds"] >= 1

    artifacts = job["ModelArtifacts"]["S3ModelArtifacts"]
    assert artifacts == f"s3://{bucket}/output/Digits-1/output/model.tar.gz"
    body = s3.get_object(Bucket=bucket, Key="output/Digits-1/output/model.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        assert tar.extractfile("model.txt").read() == b"lr=0.05"  # type: ignore[union-attr]

    listed = sm.list_training_jobs(NameContains="digits", StatusEquals="Completed")
    assert [j["TrainingJobName"] for j in listed["TrainingJobSummaries"]] == ["Digits-1"]
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "vision"}]

    with pytest.raises(ClientError) as taken:
        sm.create_training_job(**job_request(bucket, "digits-1"))
    assert taken.value.response["Error"]["Code"] == "ResourceInUse"

    logs = aws.client("logs")  # what the SageMaker SDK's fit(logs=True) reads
    group = "/aws/sagemaker/TrainingJobs"
    (stream,) = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix="Digits-1/")[
        "logStreams"
    ]
    assert stream["logStreamName"].startswith("Digits-1/algo-1-")
    events = logs.get_log_events(
        logGroupName=group, logStreamName=stream["logStreamName"], startFromHead=True
    )["events"]
    lines = [e["message"] for e in events]
    assert "epoch 2 train_loss=0.3333" in lines
    times = [e["timestamp"] for e in events]
    assert times == sorted(times) and len(set(times)) == len(times)
    later = logs.get_log_events(
        logGroupName=group,
        logStreamName=stream["logStreamName"],
        startTime=times[-2],
        startFromHead=True,
    )["events"]
    assert [e["message"] for e in later] == lines[-2:]
    found = logs.filter_log_events(logGroupName=group, filterPattern="train_loss")["events"]
    assert [e["message"] for e in found if "Digits-1" in e["logStreamName"]][-1] == (
        "epoch 2 train_loss=0.3333"
    )


def test_failure_reason_is_the_scripts_own(aws: AwsServer, bucket: str) -> None:  # noqa: F811
    sm = aws.client("sagemaker")
    request = job_request(bucket, "fails-1", Environment={"FAIL": "1"})
    sm.create_training_job(**request)
    job = wait(sm, "fails-1")
    assert job["TrainingJobStatus"] == "Failed"
    assert "the learning rate is too high" in job["FailureReason"]
    assert "ModelArtifacts" not in job or not job["ModelArtifacts"].get("S3ModelArtifacts")


def test_checkpoints_sync_to_s3_and_resume_a_new_job(aws: AwsServer, bucket: str) -> None:  # noqa: F811
    sm, s3 = aws.client("sagemaker"), aws.client("s3")
    config = {"S3Uri": f"s3://{bucket}/checkpoints/run-a"}
    sm.create_training_job(
        **job_request(bucket, "ckpt-1", Environment={"CHECKPOINT": "epoch-3.pt"}),
        CheckpointConfig=config,
    )
    assert wait(sm, "ckpt-1")["TrainingJobStatus"] == "Completed"
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="checkpoints/run-a/")
    assert [o["Key"] for o in listed["Contents"]] == ["checkpoints/run-a/epoch-3.pt"]
    sm.create_training_job(**job_request(bucket, "ckpt-2", Environment={}), CheckpointConfig=config)
    assert wait(sm, "ckpt-2")["TrainingJobStatus"] == "Completed"
    log = httpx.get(
        f"{aws.url}/api/v1/jobs/ckpt-2/logs",
        headers={"authorization": f"Bearer {aws.server.token}"},
    ).json()["text"]
    assert "restored ['epoch-3.pt']" in log

    with pytest.raises(ClientError) as store:
        sm.create_training_job(
            **job_request(bucket, "to-store", OutputDataConfig={"S3OutputPath": "s3://naiad/x"})
        )
    assert "read-only" in store.value.response["Error"]["Message"]


def test_manifest_file_channel_stages_only_the_listed_keys(
    aws: AwsServer,  # noqa: F811
    bucket: str,
) -> None:
    sm, s3 = aws.client("sagemaker"), aws.client("s3")
    for name in ("a.csv", "b.csv", "c.csv"):
        s3.put_object(Bucket=bucket, Key=f"pool/{name}", Body=b"1,2\n")
    manifest = [{"prefix": f"s3://{bucket}/pool/"}, "a.csv", "c.csv"]
    s3.put_object(Bucket=bucket, Key="pool.manifest", Body=json.dumps(manifest).encode())
    request = job_request(bucket, "manifest-1", Environment={})
    request["InputDataConfig"].append(
        {
            "ChannelName": "picked",
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "ManifestFile",
                    "S3Uri": f"s3://{bucket}/pool.manifest",
                    "S3DataDistributionType": "FullyReplicated",
                }
            },
        }
    )
    sm.create_training_job(**request)
    assert wait(sm, "manifest-1")["TrainingJobStatus"] == "Completed"
    log = httpx.get(
        f"{aws.url}/api/v1/jobs/manifest-1/logs",
        headers={"authorization": f"Bearer {aws.server.token}"},
    ).json()["text"]
    assert "channel picked ['a.csv', 'c.csv']" in log

    s3.put_object(Bucket=bucket, Key="bad.manifest", Body=b'[{"prefix": "s3://x/"}, "../up"]')
    request = job_request(bucket, "manifest-2", Environment={})
    request["InputDataConfig"][0]["DataSource"]["S3DataSource"].update(
        S3DataType="ManifestFile", S3Uri=f"s3://{bucket}/bad.manifest"
    )
    with pytest.raises(ClientError) as bad:
        sm.create_training_job(**request)
    assert "lists a key Naiad refuses" in bad.value.response["Error"]["Message"]


def test_stop_training_job(aws: AwsServer, bucket: str) -> None:  # noqa: F811
    sm = aws.client("sagemaker")
    sm.create_training_job(**job_request(bucket, "stops-1", Environment={"SLEEP": "1"}))
    deadline = time.monotonic() + 60
    while sm.describe_training_job(TrainingJobName="stops-1")["SecondaryStatus"] != "Training":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    sm.stop_training_job(TrainingJobName="stops-1")
    job = wait(sm, "stops-1")
    assert job["TrainingJobStatus"] == "Stopped"
    with pytest.raises(ClientError) as again:
        sm.stop_training_job(TrainingJobName="stops-1")
    assert again.value.response["Error"]["Code"] == "ValidationException"


def test_lists_page_sort_and_filter(aws: AwsServer, bucket: str) -> None:  # noqa: F811
    sm = aws.client("sagemaker")
    names = [f"page-{i}" for i in range(3)]
    for name in names:
        sm.create_training_job(**job_request(bucket, name, Environment={}))
    pages = sm.get_paginator("list_training_jobs").paginate(
        NameContains="page-", SortBy="Name", SortOrder="Ascending", PaginationConfig={"PageSize": 2}
    )
    seen = [j["TrainingJobName"] for p in pages for j in p["TrainingJobSummaries"]]
    assert seen == names
    newest = sm.list_training_jobs(NameContains="page-", MaxResults=1)["TrainingJobSummaries"]
    assert newest[0]["TrainingJobName"] == "page-2"  # CreationTime, Descending by default
    for name in names:
        wait(sm, name)


def test_bad_requests_get_sagemakers_errors(aws: AwsServer, bucket: str) -> None:  # noqa: F811
    unchecked = aws.client("sagemaker", config=Config(parameter_validation=False))
    with pytest.raises(ClientError) as missing:
        unchecked.create_training_job(TrainingJobName="no-role")
    assert missing.value.response["Error"]["Code"] == "ValidationException"
    assert "RoleArn" in missing.value.response["Error"]["Message"]
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400

    sm = aws.client("sagemaker")
    with pytest.raises(ClientError) as absent:
        sm.describe_training_job(TrainingJobName="never-made")
    assert absent.value.response["Error"]["Code"] == "ValidationException"

    no_script = job_request(bucket, "no-script", HyperParameters={"epochs": "1"})
    with pytest.raises(ClientError) as script:
        sm.create_training_job(**no_script)
    assert "sagemaker_program" in script.value.response["Error"]["Message"]

    with pytest.raises(ClientError) as unknown:
        sm.list_auto_ml_jobs()
    assert "ListAutoMLJobs" in unknown.value.response["Error"]["Message"]
    assert unknown.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_sts_and_iam_answer_for_the_install(aws: AwsServer) -> None:  # noqa: F811
    identity = aws.client("sts").get_caller_identity()
    assert len(identity["Account"]) == 12 and identity["Account"].isdigit()
    iam = aws.client("iam")
    role = iam.get_role(RoleName="SageMakerRole")["Role"]
    assert role["Arn"] == f"arn:aws:iam::{identity['Account']}:role/SageMakerRole"
    decision = iam.simulate_principal_policy(
        PolicySourceArn=role["Arn"], ActionNames=["s3:PutObject", "sagemaker:CreateTrainingJob"]
    )["EvaluationResults"]
    assert [d["EvalDecision"] for d in decision] == ["allowed", "allowed"]
    with pytest.raises(ClientError) as other:
        iam.list_users()
    assert other.value.response["Error"]["Code"] == "InvalidAction"


def test_unsigned_and_wrongly_signed_requests_are_refused(aws: AwsServer) -> None:  # noqa: F811
    bare = httpx.post(
        aws.url,
        headers={"X-Amz-Target": "SageMaker.ListTrainingJobs"},
        content=b"{}",
    )
    assert (
        bare.status_code == 400 and bare.json()["__type"] == "MissingAuthenticationTokenException"
    )
    wrong = aws.client("sagemaker", aws_secret_access_key="not-the-secret")
    with pytest.raises(ClientError) as refused:
        wrong.list_training_jobs()
    assert refused.value.response["Error"]["Code"] == "InvalidSignatureException"
    stranger = aws.client("sagemaker", aws_access_key_id="AKIANOTNAIADS0000000")
    with pytest.raises(ClientError) as unknown:
        stranger.list_training_jobs()
    assert unknown.value.response["Error"]["Code"] == "UnrecognizedClientException"


COMMAND = """
set -e
echo "rows $(wc -l < /opt/ml/input/data/train/train.csv) job $TRAINING_JOB_NAME"
grep -o '"epochs": "[0-9]*"' /opt/ml/input/config/hyperparameters.json
echo "python $(command -v python3) $(python3 -c 'import sys, torch; print(sys.prefix)')"
echo "tools $(command -v pip3) $(command -v torchrun)"
echo "model dir before: $(ls /opt/ml/model | tr '\\n' ' ')"
echo "$TRAINING_JOB_NAME" > "/opt/ml/model/$TRAINING_JOB_NAME.txt"
bash /opt/ml/input/data/sm_drivers/run.sh
sleep "${PAUSE:-0}"
echo "model dir after: $(ls /opt/ml/model | tr '\\n' ' ')"
if [ -n "$FAIL" ]; then echo "the data has no label column" > /opt/ml/output/failure; exit 4; fi
"""
DRIVER = "echo 'train_loss=0.25' && cp /opt/ml/input/data/train/train.csv /opt/ml/model/\n"


def container_request(bucket: str, name: str, **environment: str) -> dict[str, Any]:
    """What the SageMaker Python SDK v3's ModelTrainer sends: a container's entrypoint and
    arguments, and a channel of driver scripts that name /opt/ml paths."""
    request = job_request(bucket, name, HyperParameters={"epochs": "2"}, Environment=environment)
    request["AlgorithmSpecification"].update(
        ContainerEntrypoint=["/bin/bash"], ContainerArguments=["-c", COMMAND]
    )
    request["InputDataConfig"].append(
        {
            "ChannelName": "sm_drivers",
            "DataSource": {
                "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{bucket}/drivers"}
            },
        }
    )
    return request


def model_files(aws: AwsServer, bucket: str, name: str) -> dict[str, bytes]:  # noqa: F811
    key = f"output/{name}/output/model.tar.gz"
    body = aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        return {
            m.name.removeprefix("./"): tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


def test_container_entrypoint_runs_with_its_own_opt_ml(aws: AwsServer, bucket: str) -> None:  # noqa: F811
    sm, s3 = aws.client("sagemaker"), aws.client("s3")
    s3.put_object(Bucket=bucket, Key="drivers/run.sh", Body=DRIVER.encode())
    for name in ("Entry-A", "Entry-B"):  # at once: neither sees the other's /opt/ml
        sm.create_training_job(**container_request(bucket, name, PAUSE="1"))
    sm.create_training_job(**container_request(bucket, "entry-fails", FAIL="1"))
    for name in ("Entry-A", "Entry-B"):
        job = wait(sm, name)
        assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
        assert job["AlgorithmSpecification"]["ContainerEntrypoint"] == ["/bin/bash"]
        metrics = {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}
        assert metrics == {"train:loss": 0.25}
        files = model_files(aws, bucket, name)
        assert files == {f"{name}.txt": f"{name}\n".encode(), "train.csv": b"1,2\n3,4\n5,6\n"}
        log = httpx.get(
            f"{aws.url}/api/v1/jobs/{name.lower()}/logs",
            headers={"authorization": f"Bearer {aws.server.token}"},
        ).json()["text"]
        assert f"rows 3 job {name}" in log and '"epochs": "2"' in log
        # the job's own Python (pip installs stay in it) over the server's packages
        private = f"/jobs/{name.lower()}/.python"
        assert re.search(rf"python \S*{private}/bin/python3 \S*{private}\n", log), log
        assert re.search(rf"tools \S*{private}/bin/pip3 \S*{private}/bin/torchrun\n", log)
        assert "model dir before: \n" in log
        assert f"model dir after: {name}.txt train.csv \n" in log
    failed = wait(sm, "entry-fails")
    assert failed["TrainingJobStatus"] == "Failed"
    assert failed["FailureReason"] == "the data has no label column"
    assert s3.get_object(Bucket=bucket, Key="drivers/run.sh")["Body"].read() == DRIVER.encode()

    arguments_only = container_request(bucket, "args-only")
    del arguments_only["AlgorithmSpecification"]["ContainerEntrypoint"]
    with pytest.raises(ClientError) as refused:
        sm.create_training_job(**arguments_only)
    assert "needs ContainerEntrypoint" in refused.value.response["Error"]["Message"]
