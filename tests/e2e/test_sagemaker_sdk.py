"""The SageMaker Python SDK (v2, in a virtualenv of its own, as a user's notebook has it)
pointed at Naiad: a PyTorch estimator's fit(), deploy() and predict(), unchanged.

The SDK is an optional dependency with pins of its own (packaging, rich, ...), so it is
installed into ``.venv-sagemaker`` beside the project's venv, once, not into it.
"""

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from naiad.testing.aws import (
    AwsServer,
    aws_server,
    sdk_environment,
    sdk_virtualenv,
)

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-sagemaker"
SDK = "sagemaker>=2.250,<3"
CLIENT = Path(__file__).parent / "sagemaker_sdk" / "client.py"
TUNER = Path(__file__).parent / "sagemaker_sdk" / "tuner.py"
TELEMETRY_OFF = (
    "SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n"
)


@pytest.fixture(scope="module")
def sdk_python() -> Path:
    return sdk_virtualenv(VENV, SDK)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsServer]:
    with aws_server(tmp_path_factory.mktemp("sdk") / "home") as server:
        yield server


def test_pytorch_estimator_fit_deploy_predict(
    sdk_python: Path, server: AwsServer, tmp_path: Path
) -> None:
    env = sdk_environment(server, tmp_path, TELEMETRY_OFF)
    bucket = f"sdk-{uuid.uuid4().hex[:8]}"
    run = subprocess.run(
        [str(sdk_python), str(CLIENT), bucket],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (line,) = [line for line in run.stdout.splitlines() if "RESULT " in line]
    result = json.loads(line.split("RESULT ", 1)[1])  # after the wait's progress dots
    assert result["status"] == "Completed"
    assert result["metrics"] == {"train:loss": pytest.approx(0.3333)}
    assert result["model_data"].startswith(f"s3://{bucket}/") and result["model_data"].endswith(
        "/output/model.tar.gz"
    )
    assert result["shape"] == [3, 2]
    assert "epoch 2 loss=0.3333" in run.stdout  # fit() printed the job's own log
    assert "sm-pysdk-t" not in run.stderr  # telemetry is off: no call out of the machine


def test_hyperparameter_tuner_fit_attach_best_estimator(
    sdk_python: Path, server: AwsServer, tmp_path: Path
) -> None:
    env = sdk_environment(server, tmp_path, TELEMETRY_OFF)
    bucket = f"hpo-{uuid.uuid4().hex[:8]}"
    run = subprocess.run(
        [str(sdk_python), str(TUNER), bucket],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (line,) = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    result = json.loads(line.split("RESULT ", 1)[1])
    assert result["status"] == "Completed"
    assert result["trials"] == 4 and result["best_score"] <= 1.0
    assert result["ranges"] == ["act", "lr", "width"]
    assert set(result["acts"]) <= {'"relu"', '"gelu"', '"tanh"'}  # JSON-encoded, as the SDK sent
    assert result["best"].count("-") >= 2  # <tuning job>-NNN-xxxxxxxx
    assert result["model_data"].endswith("/output/model.tar.gz")
    assert "sm-pysdk-t" not in run.stderr
