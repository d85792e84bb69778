"""SageMaker's TensorFlow images through boto3, against a live Naiad server (SQLite: what
is tested here is TensorFlow's side, not the store's). A ``tensorflow-training`` image
makes a TensorFlow job whose instances get their TF_CONFIG; a ``tensorflow-inference``
image serves an archive made for SageMaker's TensorFlow Serving container."""

import importlib.util
import io
import json
import subprocess
import sys
import tarfile
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from naiad.testing.aws import AwsServer, aws_server
from tests.conftest import need
from tests.integration.test_sagemaker_hosting import IMAGE, ROLE
from tests.integration.test_sagemaker_training import job_request, sourcedir, wait

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _tensorflow() -> None:
    need(importlib.util.find_spec("tensorflow") is not None, "tensorflow (naiad[tensorflow])")


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsServer]:
    with aws_server(tmp_path_factory.mktemp("aws") / "home") as server:
        yield server


@pytest.fixture(scope="module")
def bucket(aws: AwsServer) -> str:
    name = f"tf-{uuid.uuid4().hex[:8]}"
    aws.client("s3").create_bucket(Bucket=name)
    return name


TF_SCRIPT = """
    import json, os
    config = json.loads(os.environ["TF_CONFIG"])
    print(f"worker {config['task']['index']} of {len(config['cluster']['worker'])}",
          f"legacy keras {os.environ['TF_USE_LEGACY_KERAS']}")
"""


def test_a_tensorflow_image_runs_the_job_as_tensorflow_with_tf_config(
    aws: AwsServer, bucket: str
) -> None:
    """The image, not the script's imports, makes it a TensorFlow job: each of the two
    instances gets its TF_CONFIG, as SageMaker's TensorFlow container sets it."""
    sm = aws.client("sagemaker")
    s3 = aws.client("s3")
    s3.put_object(Bucket=bucket, Key="code/tf.tar.gz", Body=sourcedir(textwrap.dedent(TF_SCRIPT)))
    s3.put_object(Bucket=bucket, Key="data/train/train.csv", Body=b"1,2\n")
    request = job_request(bucket, "tf-1")
    request["AlgorithmSpecification"]["TrainingImage"] = (
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/tensorflow-training:2.16-cpu-py310"
    )
    request["HyperParameters"]["sagemaker_submit_directory"] = f'"s3://{bucket}/code/tf.tar.gz"'
    request["ResourceConfig"]["InstanceCount"] = 2
    sm.create_training_job(**request)
    assert wait(sm, "tf-1")["TrainingJobStatus"] == "Completed"
    logs = aws.client("logs")
    found = logs.filter_log_events(
        logGroupName="/aws/sagemaker/TrainingJobs",
        logStreamNamePrefix="tf-1/",
        filterPattern="worker",
    )["events"]
    lines = sorted(e["message"].removeprefix("[algo-2] ") for e in found)
    assert lines == ["worker 0 of 2 legacy keras 1", "worker 1 of 2 legacy keras 1"], lines


SAVEDMODEL = """
import json, sys
import keras, numpy as np
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
model.export(sys.argv[1] + "/1", verbose=False)  # TF Serving's layout: <version>/saved_model.pb
rows = np.array([[1.0, 2.0, 3.0], [0.5, 0.0, -1.0]], dtype="float32")
print(json.dumps(model.predict(rows, verbose=0).tolist()))
"""


def test_a_tensorflow_serving_archive_serves_as_sagemaker_s_tensorflow_container_would(
    aws: AwsServer, bucket: str, tmp_path: Path
) -> None:
    """An archive made for SageMaker's TensorFlow Serving container (``1/saved_model.pb``
    and ``variables/``, no Naiad manifest), deployed with a ``tensorflow-inference`` image,
    is described by loading it once, and answers TF Serving's JSON: instances in,
    predictions out. Handlers in ``code/``, which Naiad does not run, are refused."""
    made = subprocess.run(
        [sys.executable, "-c", SAVEDMODEL, str(tmp_path)], capture_output=True, text=True
    )
    assert made.returncode == 0, made.stderr[-2000:]
    expected = json.loads(made.stdout.strip().splitlines()[-1])
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        tar.add(tmp_path / "1", arcname="1")
    s3 = aws.client("s3")
    s3.put_object(Bucket=bucket, Key="models/tf.tar.gz", Body=archive.getvalue())
    sm, runtime = aws.client("sagemaker"), aws.client("sagemaker-runtime")
    image = f"{IMAGE.split('/')[0]}/tensorflow-inference:2.16-cpu"
    sm.create_model(
        ModelName="TfServing",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": image, "ModelDataUrl": f"s3://{bucket}/models/tf.tar.gz"},
    )
    variant = {"VariantName": "main", "ModelName": "TfServing", "InitialInstanceCount": 1}
    sm.create_endpoint_config(
        EndpointConfigName="tf", ProductionVariants=[{**variant, "InstanceType": "ml.m5.large"}]
    )
    sm.create_endpoint(EndpointName="Tf", EndpointConfigName="tf")
    try:
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName="Tf", WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )
        reply = runtime.invoke_endpoint(
            EndpointName="Tf",
            ContentType="application/json",
            Body=json.dumps({"instances": [[1.0, 2.0, 3.0], [0.5, 0.0, -1.0]]}),
        )
        predictions = json.loads(reply["Body"].read())["predictions"]
        assert len(predictions) == 2
        for got, want in zip(predictions, expected, strict=True):
            assert got == pytest.approx(want, abs=1e-5)
    finally:
        sm.delete_endpoint(EndpointName="Tf")

    handlers = io.BytesIO()  # the same model, with TF Serving's handlers
    with tarfile.open(fileobj=handlers, mode="w:gz") as tar:
        tar.add(tmp_path / "1", arcname="1")
        script = b"def input_handler(data, context):\n    return data\n"
        info = tarfile.TarInfo("code/inference.py")
        info.size = len(script)
        tar.addfile(info, io.BytesIO(script))
    s3.put_object(Bucket=bucket, Key="models/tf-handlers.tar.gz", Body=handlers.getvalue())
    with pytest.raises(ClientError) as refused:
        sm.create_model(
            ModelName="TfHandlers",
            ExecutionRoleArn=ROLE,
            PrimaryContainer={
                "Image": image,
                "ModelDataUrl": f"s3://{bucket}/models/tf-handlers.tar.gz",
            },
        )
    error = refused.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert "code/inference.py" in error["Message"] and "input_handler" in error["Message"]
    with pytest.raises(ClientError):
        sm.describe_model(ModelName="TfHandlers")  # nothing half-made is left
