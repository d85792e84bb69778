"""SageMaker model archives on a real server: registered through the REST API, deployed to
an endpoint, invoked with JSON, CSV and .npy through the server's front door.

* A SageMaker-style training job saves ``model.pt`` and ``code/inference.py`` (custom
  ``input_fn`` and ``output_fn``) and no naiad-model.json; registering the job's model
  makes it a ``sagemaker`` version, and its replica answers through the script.
* An archive of a lone TorchScript ``model.pt`` is served by the toolkit's default
  handlers (and batched).
* A ``model_fn`` that raises fails the endpoint with its sentence.
"""

import io
import json
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch

import naiad
from naiad.testing.endpoints import kill_replicas
from naiad.testing.jobs import source_tarball
from naiad.testing.live import LiveServer

API = "/api/v1"
SCRIPT_TYPE = "application/vnd.example+json"

INFERENCE = """
    import io
    import json

    import numpy as np
    import torch


    def input_fn(request_body, request_content_type):
        if request_content_type == "application/json":
            return torch.tensor(json.loads(request_body)["rows"], dtype=torch.float32)
        if request_content_type == "text/csv":
            lines = request_body.strip().splitlines()
            return torch.tensor([[float(v) for v in line.split(",")] for line in lines])
        if request_content_type == "application/x-npy":
            array = np.load(io.BytesIO(request_body), allow_pickle=False)
            return torch.from_numpy(array).float()
        raise ValueError(f"unsupported content type {request_content_type}")


    def output_fn(prediction, accept):
        rows = prediction.tolist()
        if accept == "text/csv":
            return "\\n".join(",".join(f"{v:g}" for v in row) for row in rows), "text/csv"
        if accept == "application/x-npy":
            buffer = io.BytesIO()
            np.save(buffer, prediction.numpy())
            return buffer.getvalue(), accept
        return json.dumps({"outputs": rows}), "application/vnd.example+json"
"""

# A SageMaker-style training script: it saves TorchScript and copies its inference code
# into the model directory, as the SageMaker Python SDK's examples do.
TRAIN = """
    import os
    import shutil

    import torch


    class Affine(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2 + 1


    model_dir = os.environ["SM_MODEL_DIR"]
    torch.jit.script(Affine()).save(os.path.join(model_dir, "model.pt"))
    os.makedirs(os.path.join(model_dir, "code"))
    shutil.copy("inference.py", os.path.join(model_dir, "code", "inference.py"))
"""

FAILING = """
    def model_fn(model_dir):
        raise FileNotFoundError("weights.bin is missing from " + model_dir.rsplit("/", 1)[-1])
"""


class Affine(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 + 1


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(home=tmp_path_factory.mktemp("sagemaker") / "home")
    server.start()
    try:
        yield server
    finally:
        server.stop()
        kill_replicas(server.home)


@pytest.fixture(scope="module")
def api(live: LiveServer) -> Iterator[httpx.Client]:
    headers = {"authorization": f"Bearer {live.token}"}
    with httpx.Client(base_url=live.url, headers=headers, timeout=60) as client:
        yield client


def tar_gz(files: dict[str, bytes]) -> bytes:
    return source_tarball(files)


def torchscript() -> bytes:
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(Affine()), buffer)
    return buffer.getvalue()


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def register(api: httpx.Client, name: str, archive: bytes) -> httpx.Response:
    """Upload a model.tar.gz and register it: the REST calls the SDK and CLI make."""
    uploaded = api.put(f"{API}/models/uploads", content=archive)
    assert uploaded.status_code == 201, uploaded.text
    return api.post(
        f"{API}/models/{name}/versions", json={"upload_uri": uploaded.json()["source_uri"]}
    )


def deploy(api: httpx.Client, name: str, model: str, done: Callable[[dict], bool]) -> dict:
    created = api.post(f"{API}/endpoints", json={"name": name, "variants": [{"model": model}]})
    assert created.status_code == 201, created.text
    deadline = time.monotonic() + 90
    while True:
        endpoint = api.get(f"{API}/endpoints/{name}").json()
        if done(endpoint):
            return endpoint
        assert time.monotonic() < deadline, f"endpoint {name} never got there: {endpoint}"
        time.sleep(0.2)


def in_service(endpoint: dict) -> bool:
    assert endpoint["status"] != "Failed", endpoint["status_reason"]
    return endpoint["status"] == "InService" and not endpoint["pending_variants"]


def invoke(
    api: httpx.Client, endpoint: str, body: bytes, content_type: str, accept: str | None = None
) -> httpx.Response:
    headers = {"content-type": content_type}
    if accept is not None:
        headers["accept"] = accept
    return api.post(f"/endpoints/{endpoint}/invocations", content=body, headers=headers)


def test_a_training_jobs_archive_with_an_inference_script_serves_through_it(
    live: LiveServer, api: httpx.Client, tmp_path: Path
) -> None:
    (tmp_path / "train.py").write_text(textwrap.dedent(TRAIN))
    (tmp_path / "inference.py").write_text(textwrap.dedent(INFERENCE))
    client = naiad.Client(url=live.url, token=live.token)
    job = client.training_jobs.create(name="sm-train", entrypoint="train.py", source_dir=tmp_path)
    assert job.wait(timeout=180).status == "Completed"

    registered = api.post(f"{API}/models/scripted/versions", json={"job": "sm-train"})
    assert registered.status_code == 201, registered.text
    version = registered.json()
    assert (version["format"], version["signature"]) == ("sagemaker", None)
    manifest = json.loads(
        (live.home / "artifacts" / version["artifact_uri"] / "naiad-model.json").read_text()
    )
    assert manifest["file"] == "code/inference.py"
    shown = client.models.get("scripted:1")  # the SDK reads a version without a signature
    assert shown.format == "sagemaker" and shown.signature is None

    deploy(api, "scripted", "scripted:1", in_service)
    answer = invoke(api, "scripted", b'{"rows": [[1, 2], [3, 4]]}', "application/json")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == SCRIPT_TYPE
    assert answer.json() == {"outputs": [[3.0, 5.0], [7.0, 9.0]]}

    answer = invoke(api, "scripted", b"1,2\n3,4\n", "text/csv", "text/csv")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/csv"
    assert answer.text == "3,5\n7,9"

    body = npy(np.array([[0.5, -1.0]], dtype=np.float64))
    answer = invoke(api, "scripted", body, "application/x-npy", "application/x-npy")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/x-npy"
    assert np.load(io.BytesIO(answer.content)).tolist() == [[2.0, -1.0]]

    # The script's own failure: a 500 with its sentence, and the replica keeps serving.
    failed = invoke(api, "scripted", b"rows", "text/plain")
    assert failed.status_code == 500
    assert failed.json() == {
        "error": "model_error",
        "message": "input_fn failed: ValueError: unsupported content type text/plain.",
    }
    again = invoke(api, "scripted", b'{"rows": [[0, 0]]}', "application/json")
    assert again.status_code == 200 and again.json() == {"outputs": [[1.0, 1.0]]}


def test_a_lone_torchscript_model_serves_with_the_default_handlers(api: httpx.Client) -> None:
    manifest = json.dumps({"format": "sagemaker", "file": "model.pt"}).encode()
    archive = tar_gz({"model.pt": torchscript(), "naiad-model.json": manifest})
    registered = register(api, "plain", archive)
    assert registered.status_code == 201, registered.text
    assert (registered.json()["format"], registered.json()["signature"]) == ("sagemaker", None)
    deploy(api, "plain", "plain:1", in_service)

    for body in (b"[[1, 2], [3, 4]]", b'{"inputs": [[1, 2], [3, 4]]}'):
        answer = invoke(api, "plain", body, "application/json")
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/json"
        assert answer.json() == [[3.0, 5.0], [7.0, 9.0]]  # a bare array, as the toolkit's

    answer = invoke(api, "plain", b"1,2\n3,4\n", "text/csv", "text/csv")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/csv"
    assert answer.text == "3.0,5.0\n7.0,9.0\n"

    body = npy(np.arange(4, dtype=np.int64).reshape(2, 2))
    answer = invoke(api, "plain", body, "application/x-npy", "application/x-npy")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/x-npy"
    result = np.load(io.BytesIO(answer.content), allow_pickle=False)
    assert result.dtype == np.int64 and result.tolist() == [[1, 3], [5, 7]]

    refused = invoke(api, "plain", b"[1]", "application/json", "text/html")
    assert refused.status_code == 406 and "Accept: text/html" in refused.json()["message"]
    refused = invoke(api, "plain", b"<rows/>", "application/xml")
    assert refused.status_code == 415 and "application/xml" in refused.json()["message"]


def test_a_bare_sagemaker_archive_registers_by_upload(api: httpx.Client) -> None:
    registered = register(api, "bare", tar_gz({"model.pt": torchscript()}))
    assert registered.status_code == 201, registered.text
    assert registered.json()["format"] == "sagemaker"


def test_a_model_fn_that_raises_fails_the_endpoint_with_its_sentence(api: httpx.Client) -> None:
    manifest = json.dumps({"format": "sagemaker", "file": "code/inference.py"}).encode()
    archive = tar_gz(
        {
            "naiad-model.json": manifest,
            "code/inference.py": textwrap.dedent(FAILING).encode(),
        }
    )
    registered = register(api, "failing", archive)
    assert registered.status_code == 201, registered.text
    endpoint = deploy(api, "failing", "failing:1", lambda e: e["status"] == "Failed")
    reason: Any = endpoint["status_reason"]
    assert "exited before it answered /ping" in reason
    version_dir = reason.split("model_fn in code/inference.py failed: ")[1].splitlines()[0]
    assert version_dir.startswith("FileNotFoundError: weights.bin is missing from ")
    assert "Traceback" not in reason
