"""What a notebook using the SageMaker Python SDK (v2) does, run against Naiad with only
the documented environment: AWS_ENDPOINT_URL, the keys, the region, telemetry off."""

import json
import sys
from pathlib import Path

import boto3
import numpy as np
import sagemaker
from sagemaker.pytorch import PyTorch

HERE = Path(__file__).parent
ROLE = "SageMakerRole"  # a role name: the SDK asks IAM for its ARN

bucket = sys.argv[1]
boto3.client("s3").create_bucket(Bucket=bucket)
session = sagemaker.Session(default_bucket=bucket)
estimator = PyTorch(
    entry_point="train.py",
    source_dir=str(HERE),
    role=ROLE,
    framework_version="2.1",
    py_version="py310",
    instance_count=1,
    instance_type="ml.m5.large",
    hyperparameters={"epochs": 3},
    metric_definitions=[{"Name": "train:loss", "Regex": "loss=([0-9.]+)"}],
    sagemaker_session=session,
)
estimator.fit()  # waits, printing the job's log from CloudWatch Logs as on AWS
job = estimator.latest_training_job.describe()
predictor = estimator.deploy(
    initial_instance_count=1,
    instance_type="ml.m5.large",
    entry_point="inference.py",
    source_dir=str(HERE),
    wait=False,
)
session.wait_for_endpoint(predictor.endpoint_name, poll=1)
prediction = predictor.predict(np.ones((3, 4), dtype=np.float32))
predictor.delete_endpoint()
print(
    "RESULT",
    json.dumps(
        {
            "status": job["TrainingJobStatus"],
            "metrics": {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]},
            "model_data": estimator.model_data,
            "shape": list(np.asarray(prediction).shape),
        }
    ),
)
