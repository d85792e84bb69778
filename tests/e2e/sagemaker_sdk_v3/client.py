"""What a notebook using the SageMaker Python SDK v3 does, run against Naiad with only the
documented configuration: AWS_ENDPOINT_URL, the keys, the region, and the SDK's config file
(telemetry off, the default bucket). The role is a name: the SDK asks IAM for its ARN.

``ModelTrainer(...).train()`` sends ContainerEntrypoint ["/bin/bash"] with arguments that
run the SDK's own drivers (the ``sm_drivers`` channel) on the user's code (``code``).

``ModelBuilder(s3_model_data_url=<the job's model.tar.gz>, image_uri=..., source_code=...)``
``.build()`` repacks the archive with ``code/inference.py`` and creates the model (given
``model=trainer`` instead, SDK 3.27 repacks an empty default prefix of its own, on AWS
too); ``deploy()`` creates the endpoint config and the endpoint; ``Endpoint.invoke`` sends
JSON; then everything is deleted."""

import json
import sys
import time
from pathlib import Path

import boto3
from sagemaker.core.resources import EndpointConfig
from sagemaker.serve import ModelBuilder
from sagemaker.train import ModelTrainer
from sagemaker.train.configs import Compute, InputData, MetricDefinition, SourceCode

HERE = Path(__file__).parent
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5-cpu-py311"
SERVING_IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.5-cpu-py311"
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
    flush=True,
)

started = time.monotonic()
builder = ModelBuilder(  # the job's model.tar.gz, repacked with code/inference.py
    s3_model_data_url=job.model_artifacts.s3_model_artifacts,
    image_uri=SERVING_IMAGE,
    source_code=SourceCode(source_dir=str(HERE / "serve"), entry_script="inference.py"),
    role_arn=ROLE,
    instance_type="ml.m5.large",
)
model = builder.build()
built = time.monotonic()
# deploy(wait=True) sleeps 30 s before its first look; waiting on the status is quicker
endpoint = builder.deploy(initial_instance_count=1, wait=False)
endpoint.wait_for_status("InService", poll=1, timeout=120)
deployed = time.monotonic()
log = boto3.client("logs").filter_log_events(  # what deploy(wait=True) reads as it waits
    logGroupName=f"/aws/sagemaker/Endpoints/{endpoint.endpoint_name}",
    logStreamNamePrefix="AllTraffic/",
)["events"]
answer = endpoint.invoke(body=json.dumps([[1.0, 2.0], [3.0, 4.0]]), content_type="application/json")
prediction = json.loads(answer.body.read())
invoked = time.monotonic()
container = model.primary_container
print(
    "HOSTED",
    json.dumps(
        {
            "model": model.model_name,
            "endpoint": endpoint.endpoint_name,
            "config": endpoint.endpoint_config_name,
            "model_data": container.model_data_url,
            "environment": container.environment,
            "prediction": prediction,
            "variant": answer.invoked_production_variant,
            "log": [(e["logStreamName"], e["message"]) for e in log],
            "seconds": {
                "build": round(built - started, 2),
                "deploy": round(deployed - built, 2),
                "invoke": round(invoked - deployed, 3),
            },
        }
    ),
    flush=True,
)
config = EndpointConfig.get(endpoint_config_name=endpoint.endpoint_config_name)
endpoint.delete()
endpoint.wait_for_delete(poll=1, timeout=60)
config.delete()
model.delete()
