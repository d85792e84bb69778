"""What a notebook using the SageMaker Python SDK v3 does, run against Naiad with only the
documented configuration: AWS_ENDPOINT_URL, the keys, the region, and the SDK's config file
(telemetry off, the default bucket). The role is a name: the SDK asks IAM for its ARN.

``ModelTrainer(...).train()`` sends ContainerEntrypoint ["/bin/bash"] with arguments that
run the SDK's own drivers (the ``sm_drivers`` channel) on the user's code (``code``)."""

import json
import sys
import time
from pathlib import Path

import boto3
from sagemaker.train import ModelTrainer
from sagemaker.train.configs import Compute, InputData, MetricDefinition, SourceCode

HERE = Path(__file__).parent
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5-cpu-py311"
ROLE = "SageMakerRole"

bucket = sys.argv[1]  # also the config file's DefaultS3Bucket, which the SDK creates
s3 = boto3.client("s3")
s3.create_bucket(Bucket=bucket)
rows = "".join(f"{i},{i + 1},{2 * i + 1}\n" for i in range(8))
s3.put_object(Bucket=bucket, Key="data/train/train.csv", Body=rows.encode())

trainer = ModelTrainer(
    training_image=IMAGE,
    source_code=SourceCode(source_dir=str(HERE / "src"), entry_script="train.py"),
    compute=Compute(instance_type="ml.m5.large", instance_count=1),
    hyperparameters={"epochs": 3},
    role=ROLE,
    base_job_name="v3-trainer",
).with_metric_definitions([MetricDefinition(name="train:loss", regex="final loss=([0-9.]+)")])
started = time.monotonic()
trainer.train(
    input_data_config=[InputData(channel_name="train", data_source=f"s3://{bucket}/data/train")]
)
seconds = time.monotonic() - started
job = trainer._latest_training_job
job.refresh()
print(
    "RESULT",
    json.dumps(
        {
            "status": job.training_job_status,
            "name": job.training_job_name,
            "metrics": {m.metric_name: m.value for m in job.final_metric_data_list or []},
            "model_data": job.model_artifacts.s3_model_artifacts,
            "seconds": round(seconds, 2),
        }
    ),
)
