"""The SageMaker Python SDK v3 (in a virtualenv of its own, as a user's notebook has it)
pointed at Naiad: ``ModelTrainer(...).train()`` of a small PyTorch script on a CSV channel,
then ``ModelBuilder(...).build()`` of its model, ``deploy()``, ``Endpoint.invoke`` with JSON and
the deletes, unchanged. v3 sends a container command (``ContainerEntrypoint``) that runs its
own driver scripts, which hard-code SageMaker's ``/opt/ml`` paths; its ModelBuilder repacks
the job's model.tar.gz with ``code/inference.py`` (``SAGEMAKER_SUBMIT_DIRECTORY`` is
``/opt/ml/model/code``, inside the archive).

The SDK is an optional dependency with pins of its own, installed once into
``.venv-sagemaker3`` beside the project's venv, not into it (it pulls no torch: the job
runs with the server's).
"""

import io
import json
import subprocess
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from botocore.exceptions import ClientError

import naiad
from naiad.testing.aws import (
    AwsServer,
    aws_server,
    sdk_environment,
    sdk_virtualenv,
)

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-sagemaker3"
SDK = "sagemaker>=3.20,<4"
CLIENT = Path(__file__).parent / "sagemaker_sdk_v3" / "client.py"
CONFIG = """SchemaVersion: '1.0'
SageMaker:
  PythonSDK:
    Modules:
      TelemetryOptOut: true
      Session:
        DefaultS3Bucket: {bucket}
"""


@pytest.fixture(scope="module")
def sdk_python() -> Path:
    return sdk_virtualenv(VENV, SDK)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsServer]:
    with aws_server(tmp_path_factory.mktemp("sdk3") / "home") as server:
        yield server


def members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {
            m.name.removeprefix("./"): tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


def result(stdout: str, tag: str) -> dict:
    (line,) = [line for line in stdout.splitlines() if line.startswith(tag + " ")]
    return json.loads(line.removeprefix(tag + " "))


def test_model_trainer_trains_and_model_builder_deploys(
    sdk_python: Path, server: AwsServer, tmp_path: Path
) -> None:
    bucket = f"sdk3-{uuid.uuid4().hex[:8]}"
    env = sdk_environment(server, tmp_path, CONFIG.format(bucket=bucket))  # the docs' block
    run = subprocess.run(
        [str(sdk_python), str(CLIENT), bucket],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    trained = result(run.stdout, "RESULT")
    assert trained["status"] == "Completed"
    assert trained["metrics"] == {"train:loss": 0.125}
    prefix = f"s3://{bucket}/v3-trainer/{trained['name']}/output/"
    assert trained["model_data"] == prefix + "model.tar.gz"

    s3 = server.client("s3")
    key = prefix.removeprefix(f"s3://{bucket}/")
    model = members(s3.get_object(Bucket=bucket, Key=key + "model.tar.gz")["Body"].read())
    assert list(model) == ["model.pt"]
    output = members(s3.get_object(Bucket=bucket, Key=key + "output.tar.gz")["Body"].read())
    assert output == {"rows.txt": b"8"}
    sm = server.client("sagemaker")
    job = sm.describe_training_job(TrainingJobName=trained["name"])
    spec = job["AlgorithmSpecification"]
    assert spec["ContainerEntrypoint"] == ["/bin/bash"]
    assert "sm_drivers/sm_train.sh" in spec["ContainerArguments"][-1]
    log = server.client("logs").filter_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs", filterPattern="Executing"
    )["events"]
    assert any("train.py --epochs 3" in e["message"] for e in log)

    hosted = result(run.stdout, "HOSTED")
    environment = hosted["environment"]
    assert environment["SAGEMAKER_PROGRAM"] == "inference.py"
    assert environment["SAGEMAKER_SUBMIT_DIRECTORY"] == "/opt/ml/model/code"  # in the archive
    repacked = hosted["model_data"].removeprefix(f"s3://{bucket}/")
    files = members(s3.get_object(Bucket=bucket, Key=repacked)["Body"].read())
    assert sorted(files) == ["code/inference.py", "model.pt"]
    state = torch.load(io.BytesIO(model["model.pt"]), weights_only=True)
    expected = torch.tensor([[1.0, 2.0], [3.0, 4.0]]) @ state["weight"].T + state["bias"]
    assert hosted["variant"] == "AllTraffic"
    assert torch.allclose(torch.tensor(hosted["prediction"]), expected)
    (stream, first), *_ = hosted["log"]  # the replica's log, in the endpoint's log group
    assert stream.startswith("AllTraffic/") and first.startswith("--- starting on port")

    # the deletes left nothing: SageMaker's records, and the Naiad endpoint behind them
    assert sm.list_endpoints()["Endpoints"] == []
    assert sm.list_endpoint_configs()["EndpointConfigs"] == []
    assert sm.list_models()["Models"] == []
    with pytest.raises(ClientError, match="Could not find endpoint"):
        sm.describe_endpoint(EndpointName=hosted["endpoint"])
    with naiad.Client(url=server.url, token=server.server.token) as client:
        assert client.endpoints.list() == []
