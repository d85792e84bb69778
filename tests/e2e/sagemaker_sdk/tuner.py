"""What a notebook tuning a PyTorch estimator with the SageMaker Python SDK (v2)'s
HyperparameterTuner does, run against Naiad with only the documented environment."""

import json
import sys
from pathlib import Path

import boto3
import sagemaker
from sagemaker.pytorch import PyTorch
from sagemaker.tuner import (
    CategoricalParameter,
    ContinuousParameter,
    HyperparameterTuner,
    IntegerParameter,
)

HERE = Path(__file__).parent

bucket = sys.argv[1]
boto3.client("s3").create_bucket(Bucket=bucket)
session = sagemaker.Session(default_bucket=bucket)
estimator = PyTorch(
    entry_point="objective.py",
    source_dir=str(HERE / "tuning"),
    role="SageMakerRole",
    framework_version="2.1",
    py_version="py310",
    instance_count=1,
    instance_type="ml.m5.large",
    hyperparameters={"steps": 4},
    sagemaker_session=session,
)
tuner = HyperparameterTuner(
    estimator,
    objective_metric_name="score",
    metric_definitions=[{"Name": "score", "Regex": "score=(-?[0-9.]+)"}],
    hyperparameter_ranges={
        "lr": ContinuousParameter(1e-4, 1.0, scaling_type="Logarithmic"),
        "width": IntegerParameter(1, 6),
        "act": CategoricalParameter(["relu", "gelu", "tanh"]),
    },
    max_jobs=4,
    max_parallel_jobs=2,
    random_seed=7,
)
tuner.fit(wait=False)
name = tuner.latest_tuning_job.name
session.wait_for_tuning_job(name, poll=1)  # tuner.wait() polls every 5 s
attached = HyperparameterTuner.attach(name, sagemaker_session=session)
best = attached.best_training_job()
frame = attached.analytics().dataframe()
model_data = attached.best_estimator().model_data
ranges = attached.hyperparameter_ranges()
print(
    "RESULT",
    json.dumps(
        {
            "status": session.describe_tuning_job(name)["HyperParameterTuningJobStatus"],
            "best": best,
            "trials": len(frame),
            "best_score": float(frame["FinalObjectiveValue"].max()),
            "ranges": sorted(r["Name"] for k in ranges.values() for r in k),
            "acts": sorted(set(frame["act"])),
            "model_data": model_data,
        }
    ),
)
