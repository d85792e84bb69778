"""examples/sagemaker-boto3 runs as its README says: boto3 alone, configured by the
environment `naiad keys env` prints, trains on two instances, deploys and classifies."""

import os
import subprocess
import sys
from pathlib import Path

from naiad.testing.aws import REGION, AwsServer, aws  # noqa: F401 - the fixture

ROOT = Path(__file__).resolve().parents[2]


def test_boto3_example_trains_deploys_and_classifies(aws: AwsServer) -> None:  # noqa: F811
    credentials = aws.credentials()
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": aws.url,
        "AWS_ACCESS_KEY_ID": credentials["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": credentials["aws_secret_access_key"],
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": os.devnull,  # nothing from this machine's own AWS set-up
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    run = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "sagemaker-boto3" / "run.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert any(line.startswith("trained in") and "2 instances" in line for line in lines)
    (accuracy,) = [line for line in lines if "accuracy" in line and "variant" in line]
    assert accuracy.startswith("variant AllTraffic")
    assert float(accuracy.split("accuracy ")[1].split()[0]) >= 0.8, accuracy
    assert lines[-1] == "endpoint deleted"
