"""SageMaker hosting, registry and experiments through boto3's own clients against a live
Naiad server (SQLite and PostgreSQL): models from an S3 model.tar.gz with the inference
toolkit's handler, endpoint configs, endpoints, sagemaker-runtime, packages, trials."""

import io
import json
import uuid
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from naiad.testing.aws import AwsServer, aws  # noqa: F401 - the fixture
from naiad.testing.jobs import source_tarball

ROLE = "arn:aws:iam::111122223333:role/SageMakerRole"
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-inference:2.5-cpu-py311"

HANDLER = """
    import json, os
    import torch

    def model_fn(model_dir):
        return torch.jit.load(os.path.join(model_dir, "model.pt"))

    def input_fn(body, content_type):
        if content_type != "application/json":
            raise ValueError(f"send JSON, not {content_type}")
        return torch.tensor(json.loads(body)["x"], dtype=torch.float32)

    def output_fn(prediction, accept):
        return json.dumps({"y": prediction.tolist(), "scale": SCALE}), "application/json"

    SCALE = {scale}
"""


def model_archive(scale: float) -> bytes:
    """A TorchScript model that multiplies by ``scale``, with its handler in code/."""
    import torch

    class Scale(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = scale

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * self.scale

    model = io.BytesIO()
    torch.jit.save(torch.jit.script(Scale()), model)
    handler = HANDLER.replace("{scale}", repr(scale))
    return source_tarball({"model.pt": model.getvalue(), "code/inference.py": handler})


@pytest.fixture(scope="module")
def bucket(aws: AwsServer) -> str:  # noqa: F811
    s3 = aws.client("s3")
    name = f"host-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=name)
    for scale in (2.0, 3.0):
        s3.put_object(Bucket=name, Key=f"models/x{scale:g}.tar.gz", Body=model_archive(scale))
    return name


def create_model(sm: Any, name: str, bucket: str, scale: float) -> None:
    sm.create_model(
        ModelName=name,
        ExecutionRoleArn=ROLE,
        PrimaryContainer={
            "Image": IMAGE,
            "ModelDataUrl": f"s3://{bucket}/models/x{scale:g}.tar.gz",
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py"},
        },
    )


def invoke(runtime: Any, endpoint: str, **extra: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    reply = runtime.invoke_endpoint(
        EndpointName=endpoint,
        ContentType="application/json",
        Accept="application/json",
        Body=json.dumps({"x": [1.0, 2.0]}),
        **extra,
    )
    return json.loads(reply["Body"].read()), reply


def test_models_configs_endpoints_and_runtime(aws: AwsServer, bucket: str) -> None:  # noqa: F811
    sm, runtime = aws.client("sagemaker"), aws.client("sagemaker-runtime")
    create_model(sm, "Doubler", bucket, 2.0)
    create_model(sm, "tripler", bucket, 3.0)
    with pytest.raises(ClientError) as twice:
        create_model(sm, "Doubler", bucket, 2.0)
    assert "Cannot create already existing model" in twice.value.response["Error"]["Message"]
    described = sm.describe_model(ModelName="Doubler")
    assert described["PrimaryContainer"]["ModelDataUrl"].endswith("x2.tar.gz")
    assert "VpcConfig" not in described  # left out when not given, as AWS does
    assert {m["ModelName"] for m in sm.list_models()["Models"]} == {"Doubler", "tripler"}

    variant = {"InstanceType": "ml.m5.large", "InitialInstanceCount": 1}
    sm.create_endpoint_config(
        EndpointConfigName="scales",
        ProductionVariants=[
            {
                **variant,
                "VariantName": "double",
                "ModelName": "Doubler",
                "InitialVariantWeight": 1.0,
            },
            {
                **variant,
                "VariantName": "triple",
                "ModelName": "tripler",
                "InitialVariantWeight": 0.0,
                "ManagedInstanceScaling": {
                    "Status": "ENABLED",
                    "MinInstanceCount": 1,
                    "MaxInstanceCount": 2,
                },
            },
        ],
    )
    assert (
        sm.describe_endpoint_config(EndpointConfigName="scales")["ProductionVariants"][0][
            "VariantName"
        ]
        == "double"
    )
    arn = sm.create_endpoint(EndpointName="Scales", EndpointConfigName="scales")["EndpointArn"]
    assert arn.endswith(":endpoint/scales")
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName="Scales", WaiterConfig={"Delay": 1, "MaxAttempts": 120}
    )
    endpoint = sm.describe_endpoint(EndpointName="Scales")
    assert endpoint["EndpointStatus"] == "InService"
    assert {
        v["VariantName"]: v["CurrentInstanceCount"] for v in endpoint["ProductionVariants"]
    } == {
        "double": 1,
        "triple": 1,
    }
    scaling = {
        v["VariantName"]: v.get("ManagedInstanceScaling") for v in endpoint["ProductionVariants"]
    }
    assert scaling == {
        "double": None,
        "triple": {"Status": "ENABLED", "MinInstanceCount": 1, "MaxInstanceCount": 2},
    }

    body, reply = invoke(runtime, "Scales")
    assert body == {"y": [2.0, 4.0], "scale": 2.0}  # all traffic on the weighted variant
    assert reply["InvokedProductionVariant"] == "double"
    assert reply["ContentType"] == "application/json"
    body, reply = invoke(runtime, "Scales", TargetVariant="triple")
    assert body["y"] == [3.0, 6.0] and reply["InvokedProductionVariant"] == "triple"

    logs = aws.client("logs")  # the replicas' logs, as the SDK's deploy(wait=True) reads them
    group = "/aws/sagemaker/Endpoints/Scales"
    streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    assert [s["logStreamName"].split("/")[0] for s in streams] == ["double", "triple"]
    found = logs.filter_log_events(logGroupName=group, logStreamNamePrefix="double/")["events"]
    assert {e["logStreamName"] for e in found} == {streams[0]["logStreamName"]}
    assert found[0]["message"].startswith("--- starting on port")
    assert found[0]["timestamp"] == streams[0]["firstEventTimestamp"]
    head = logs.get_log_events(
        logGroupName=group, logStreamName=streams[0]["logStreamName"], startFromHead=True
    )["events"]
    assert [e["message"] for e in head] == [e["message"] for e in found][: len(head)]
    for absent in ("/aws/sagemaker/Endpoints/nowhere", "/aws/sagemaker/Endpoints/"):
        with pytest.raises(ClientError) as no_group:
            logs.filter_log_events(logGroupName=absent)
        assert no_group.value.response["Error"]["Code"] == "ResourceNotFoundException"

    with pytest.raises(ClientError) as model_error:
        runtime.invoke_endpoint(EndpointName="Scales", ContentType="text/csv", Body=b"1,2")
    error = model_error.value.response
    assert error["Error"]["Code"] == "ModelError"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert "send JSON, not text/csv" in error["Error"]["Message"]
    with pytest.raises(ClientError) as missing:
        invoke(runtime, "nowhere")
    assert missing.value.response["Error"]["Code"] == "ValidationError"

    sm.update_endpoint_weights_and_capacities(
        EndpointName="Scales",
        DesiredWeightsAndCapacities=[
            {"VariantName": "double", "DesiredWeight": 0.0},
            {"VariantName": "triple", "DesiredWeight": 1.0},
        ],
    )
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName="Scales", WaiterConfig={"Delay": 1, "MaxAttempts": 120}
    )
    body, reply = invoke(runtime, "Scales")
    assert reply["InvokedProductionVariant"] == "triple" and body["scale"] == 3.0

    listed = sm.list_endpoints(NameContains="scal", StatusEquals="InService")["Endpoints"]
    assert [e["EndpointName"] for e in listed] == ["Scales"]
    naiad = httpx.get(
        f"{aws.url}/api/v1/endpoints/scales",
        headers={"authorization": f"Bearer {aws.server.token}"},
    ).json()
    assert {v["name"] for v in naiad["variants"]} == {"double", "triple"}  # one object
    autoscaled = {v["name"]: v["autoscaling"] for v in naiad["variants"]}
    assert autoscaled["double"] is None  # ...and the new weights kept the autoscaling
    assert (autoscaled["triple"]["min_replicas"], autoscaled["triple"]["max_replicas"]) == (1, 2)

    sm.delete_endpoint(EndpointName="Scales")
    sm.get_waiter("endpoint_deleted").wait(
        EndpointName="Scales", WaiterConfig={"Delay": 1, "MaxAttempts": 120}
    )
    with pytest.raises(ClientError) as no_logs:  # its log group went with it
        logs.describe_log_streams(logGroupName=group)
    assert no_logs.value.response["Error"]["Code"] == "ResourceNotFoundException"
    sm.delete_endpoint_config(EndpointConfigName="scales")
    sm.delete_model(ModelName="Doubler")
    with pytest.raises(ClientError) as gone:
        sm.describe_model(ModelName="Doubler")
    assert gone.value.response["Error"]["Code"] == "ValidationException"


def test_model_packages_are_registered_versions(aws: AwsServer, bucket: str) -> None:  # noqa: F811
    sm = aws.client("sagemaker")
    sm.create_model_package_group(ModelPackageGroupName="Scalers")
    container = {"Image": IMAGE, "ModelDataUrl": f"s3://{bucket}/models/x2.tar.gz"}
    arns = [
        sm.create_model_package(
            ModelPackageGroupName="Scalers",
            InferenceSpecification={
                "Containers": [container],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            ModelApprovalStatus="PendingManualApproval",
        )["ModelPackageArn"]
        for _ in range(2)
    ]
    assert [a.rsplit("/", 1)[1] for a in arns] == ["1", "2"]
    listed = sm.list_model_packages(ModelPackageGroupName="Scalers", SortBy="CreationTime")
    assert [p["ModelPackageVersion"] for p in listed["ModelPackageSummaryList"]] == [2, 1]
    sm.update_model_package(ModelPackageArn=arns[1], ModelApprovalStatus="Approved")
    assert sm.describe_model_package(ModelPackageName=arns[1])["ModelApprovalStatus"] == "Approved"
    approved = sm.list_model_packages(
        ModelPackageGroupName="Scalers", ModelApprovalStatus="Approved"
    )["ModelPackageSummaryList"]
    assert [p["ModelPackageVersion"] for p in approved] == [2]
    naiad = httpx.get(
        f"{aws.url}/api/v1/models/scalers",
        headers={"authorization": f"Bearer {aws.server.token}"},
    ).json()
    assert naiad["latest_version"] == 2 and naiad["aliases"] == {"approved": 2}

    sm.create_model(
        ModelName="from-package",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"ModelPackageName": arns[1]},
    )
    assert sm.describe_model(ModelName="from-package")["PrimaryContainer"] == {
        "ModelPackageName": arns[1]
    }
    with pytest.raises(ClientError) as busy:
        sm.delete_model_package_group(ModelPackageGroupName="Scalers")
    assert "delete them first" in busy.value.response["Error"]["Message"]


def test_experiments_trials_and_components(aws: AwsServer) -> None:  # noqa: F811
    sm = aws.client("sagemaker")
    sm.create_experiment(ExperimentName="churn", Description="which features matter")
    sm.create_trial(TrialName="churn-lr", ExperimentName="churn")
    sm.create_trial_component(
        TrialComponentName="prep-1",
        Parameters={"rows": {"NumberValue": 1000}, "split": {"StringValue": "80/20"}},
    )
    sm.associate_trial_component(TrialComponentName="prep-1", TrialName="churn-lr")
    in_trial = sm.list_trial_components(TrialName="churn-lr")["TrialComponentSummaries"]
    assert [c["TrialComponentName"] for c in in_trial] == ["prep-1"]
    component = sm.describe_trial_component(TrialComponentName="prep-1")
    assert component["Parameters"]["rows"] == {"NumberValue": 1000.0}
    trials = sm.list_trials(ExperimentName="churn")["TrialSummaries"]
    assert [t["TrialName"] for t in trials] == ["churn-lr"]
    with pytest.raises(ClientError) as busy:
        sm.delete_trial(TrialName="churn-lr")
    assert busy.value.response["Error"]["Code"] == "ValidationException"
    sm.disassociate_trial_component(TrialComponentName="prep-1", TrialName="churn-lr")
    sm.delete_trial(TrialName="churn-lr")
    sm.delete_trial_component(TrialComponentName="prep-1")
    with pytest.raises(ClientError) as gone:
        sm.describe_trial(TrialName="churn-lr")
    assert gone.value.response["Error"]["Code"] == "ResourceNotFound"
    headers = {"authorization": f"Bearer {aws.server.token}"}
    experiments = httpx.get(f"{aws.url}/api/v1/experiments", headers=headers).json()
    assert "churn" in {e["name"] for e in experiments}

    arn = sm.describe_experiment(ExperimentName="churn")["ExperimentArn"]
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": "owner", "Value": "ana"}])
    sm.delete_tags(ResourceArn=arn, TagKeys=["absent"])
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "owner", "Value": "ana"}]
    sm.delete_experiment(ExperimentName="churn")
