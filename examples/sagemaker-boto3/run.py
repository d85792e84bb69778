"""Train, deploy and call the digits CNN with boto3 alone, as on SageMaker.

Point boto3 at Naiad once (``eval "$(naiad keys env)"`` sets AWS_ENDPOINT_URL and the
keys), then:

    .venv/bin/python examples/sagemaker-boto3/run.py

Nothing here is Naiad's: the same calls run against AWS with a real role and bucket.
"""

import io
import json
import os
import tarfile
import time
import uuid
from pathlib import Path

import boto3
import numpy as np
from sklearn.datasets import load_digits

HERE = Path(__file__).parent
ROLE = os.environ.get("SAGEMAKER_ROLE", "arn:aws:iam::111122223333:role/SageMakerRole")
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5-cpu-py311"
SHARDS = 4


def npz(x: np.ndarray, y: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, x=x, y=y)
    return buffer.getvalue()


def upload_data(s3, bucket: str) -> None:
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order], y[order]
    split = int(0.8 * len(y))
    shards = zip(np.array_split(x[:split], SHARDS), np.array_split(y[:split], SHARDS), strict=True)
    for i, (xs, ys) in enumerate(shards):
        s3.put_object(Bucket=bucket, Key=f"digits/train/part-{i}.npz", Body=npz(xs, ys))
    s3.put_object(Bucket=bucket, Key="digits/validation/all.npz", Body=npz(x[split:], y[split:]))


def upload_code(s3, bucket: str) -> str:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in ("train.py", "inference.py"):
            tar.add(HERE / name, arcname=name)
    s3.put_object(Bucket=bucket, Key="code/sourcedir.tar.gz", Body=buffer.getvalue())
    return f"s3://{bucket}/code/sourcedir.tar.gz"


def channel(name: str, uri: str, distribution: str) -> dict:
    source = {"S3DataType": "S3Prefix", "S3Uri": uri, "S3DataDistributionType": distribution}
    return {"ChannelName": name, "DataSource": {"S3DataSource": source}}


def main() -> None:
    s3, sm = boto3.client("s3"), boto3.client("sagemaker")
    runtime = boto3.client("sagemaker-runtime")
    suffix = uuid.uuid4().hex[:6]
    bucket, job = f"digits-{suffix}", f"digits-cnn-{suffix}"
    s3.create_bucket(Bucket=bucket)
    upload_data(s3, bucket)
    code = upload_code(s3, bucket)

    started = time.monotonic()
    sm.create_training_job(
        TrainingJobName=job,
        RoleArn=ROLE,
        AlgorithmSpecification={
            "TrainingImage": IMAGE,
            "TrainingInputMode": "File",
            "MetricDefinitions": [
                {"Name": "validation:accuracy", "Regex": "val_accuracy=([0-9.]+)"}
            ],
        },
        HyperParameters={
            "epochs": "8",
            "lr": "0.05",
            "sagemaker_program": json.dumps("train.py"),
            "sagemaker_submit_directory": json.dumps(code),
        },
        InputDataConfig=[
            channel("train", f"s3://{bucket}/digits/train", "ShardedByS3Key"),
            channel("validation", f"s3://{bucket}/digits/validation", "FullyReplicated"),
        ],
        OutputDataConfig={"S3OutputPath": f"s3://{bucket}/output"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 2, "VolumeSizeInGB": 5},
        StoppingCondition={"MaxRuntimeInSeconds": 900},
    )
    sm.get_waiter("training_job_completed_or_stopped").wait(
        TrainingJobName=job, WaiterConfig={"Delay": 2, "MaxAttempts": 300}
    )
    described = sm.describe_training_job(TrainingJobName=job)
    if described["TrainingJobStatus"] != "Completed":
        raise SystemExit(
            f"training {described['TrainingJobStatus']}: {described.get('FailureReason')}"
        )
    metrics = {m["MetricName"]: m["Value"] for m in described["FinalMetricDataList"]}
    print(f"trained in {time.monotonic() - started:.1f}s on 2 instances: {metrics}")

    model_data = described["ModelArtifacts"]["S3ModelArtifacts"]
    sm.create_model(
        ModelName=job,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={
            "Image": IMAGE.replace("training", "inference"),
            "ModelDataUrl": model_data,
            "Environment": {
                "SAGEMAKER_PROGRAM": "inference.py",
                "SAGEMAKER_SUBMIT_DIRECTORY": code,
            },
        },
    )
    sm.create_endpoint_config(
        EndpointConfigName=job,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": job,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "InitialVariantWeight": 1.0,
            }
        ],
    )
    started = time.monotonic()
    sm.create_endpoint(EndpointName=job, EndpointConfigName=job)
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=job, WaiterConfig={"Delay": 1, "MaxAttempts": 300}
    )
    print(f"endpoint {job} InService in {time.monotonic() - started:.1f}s")

    digits = load_digits()
    images = (digits.images[-100:] / 16.0).tolist()
    reply = runtime.invoke_endpoint(
        EndpointName=job,
        ContentType="application/json",
        Accept="application/json",
        Body=json.dumps({"images": images}),
    )
    answer = json.loads(reply["Body"].read())
    accuracy = float(np.mean(np.array(answer["digits"]) == digits.target[-100:]))
    print(f"variant {reply['InvokedProductionVariant']}: accuracy {accuracy:.2f} on 100 digits")

    sm.delete_endpoint(EndpointName=job)
    sm.get_waiter("endpoint_deleted").wait(EndpointName=job, WaiterConfig={"Delay": 1})
    sm.delete_endpoint_config(EndpointConfigName=job)
    sm.delete_model(ModelName=job)
    print("endpoint deleted")


if __name__ == "__main__":
    main()
