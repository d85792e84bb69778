"""The model registry's REST API on every backend: versions, aliases, references, bad input."""

import io
import json
import tarfile
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from torch import nn

from naiad.runtime.models import save_model
from naiad.sdk.models import pack_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    return save_model(net, torch.zeros(1, 1, 8, 8), tmp_path_factory.mktemp("m") / "digits")


def upload(api: TestClient, body: bytes) -> str:
    response = api.put("/api/v1/models/uploads", content=body)
    assert response.status_code == 201, response.text
    return response.json()["source_uri"]


def register(api: TestClient, name: str, archive: bytes) -> dict:
    body = {"upload_uri": upload(api, archive), "description": "from a test"}
    response = api.post(f"/api/v1/models/{name}/versions", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def tar_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_versions_count_up_and_keep_signature_and_size(api: TestClient, model_dir: Path) -> None:
    archive = pack_model(model_dir)
    first = register(api, "digits", archive)
    second = register(api, "digits", archive)
    assert (first["version"], second["version"]) == (1, 2)
    assert first["format"] == "torchscript"
    assert first["signature"]["inputs"] == {"shape": [-1, 1, 8, 8], "dtype": "float32"}
    assert first["size_bytes"] == sum(p.stat().st_size for p in model_dir.iterdir())
    assert first["artifact_uri"] != second["artifact_uri"]  # each version has its own files
    listed = api.get("/api/v1/models").json()
    assert [(m["name"], m["latest_version"]) for m in listed] == [("digits", 2)]
    versions = api.get("/api/v1/models/digits/versions").json()
    assert [v["version"] for v in versions] == [2, 1]


def test_aliases_move_and_resolve(api: TestClient, model_dir: Path) -> None:
    archive = pack_model(model_dir)
    register(api, "digits", archive)
    register(api, "digits", archive)
    moved = api.put("/api/v1/models/digits/aliases/production", json={"version": 1})
    assert moved.status_code == 200 and moved.json()["aliases"] == ["production"]
    assert api.get("/api/v1/models/digits/versions/production").json()["version"] == 1
    api.put("/api/v1/models/digits/aliases/production", json={"version": 2})
    assert api.get("/api/v1/models/digits/versions/production").json()["version"] == 2
    assert api.get("/api/v1/models/digits/versions/1").json()["aliases"] == []
    assert api.get("/api/v1/models/digits/versions/latest").json()["version"] == 2
    assert api.get("/api/v1/models/digits").json()["aliases"] == {"production": 2}
    assert api.delete("/api/v1/models/digits/aliases/production").status_code == 204
    missing = api.get("/api/v1/models/digits/versions/production")
    assert missing.status_code == 404 and "no alias 'production'" in missing.json()["message"]


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        ("/api/v1/models/digits/aliases/production", {"version": 9}, 404, "no version 9"),
        ("/api/v1/models/digits/aliases/latest", {"version": 1}, 400, "reserved"),
        ("/api/v1/models/digits/aliases/2", {"version": 1}, 400, "reserved"),
        ("/api/v1/models/digits/aliases/Bad Name", {"version": 1}, 400, "not valid"),
        ("/api/v1/models/nope/aliases/production", {"version": 1}, 404, "No model named"),
    ],
)
def test_bad_alias_requests_answer_a_sentence(
    api: TestClient, model_dir: Path, path: str, body: dict, status: int, words: str
) -> None:
    register(api, "digits", pack_model(model_dir))
    response = api.put(path, json=body)
    assert response.status_code == status, response.text
    assert words in response.json()["message"]
    assert api.get("/api/v1/models/digits/versions/1").json()["aliases"] == []


def test_bad_registrations_store_nothing(api: TestClient, model_dir: Path) -> None:
    manifest = (model_dir / "naiad-model.json").read_bytes()
    cases = [
        (tar_of({"model.pt": b"x"}), "no naiad-model.json"),
        (tar_of({"naiad-model.json": b"{}", "model.pt": b"x"}), "is not valid"),
        (tar_of({"naiad-model.json": manifest}), "not in the archive"),
        (
            tar_of(
                {
                    "naiad-model.json": manifest.replace(b"torchscript", b"safetensors"),
                    "model.pt": b"x",
                }
            ),
            "needs 'architecture'",
        ),
    ]
    for archive, words in cases:
        body = {"upload_uri": upload(api, archive)}
        response = api.post("/api/v1/models/digits/versions", json=body)
        assert response.status_code == 400, response.text
        assert words in response.json()["message"]
    not_gzip = api.put("/api/v1/models/uploads", content=b"plain text")
    assert not_gzip.status_code == 400 and "gzip" in not_gzip.json()["message"]
    both = api.post("/api/v1/models/digits/versions", json={"job": "a", "upload_uri": "b"})
    assert both.status_code == 400 and "exactly one" in both.json()["message"]
    no_job = api.post("/api/v1/models/digits/versions", json={"job": "never-ran"})
    assert no_job.status_code == 404
    forged = api.post("/api/v1/models/digits/versions", json={"upload_uri": "sources/x.tar.gz"})
    assert forged.status_code == 400
    bad_name = api.post("/api/v1/models/Digits!/versions", json={"job": "a"})
    assert bad_name.status_code == 400 and "not valid" in bad_name.json()["message"]
    assert api.get("/api/v1/models").json() == []  # nothing half-registered


@pytest.mark.parametrize("ref", ["digits:0", "digits:x", "digits:1:2"])
def test_malformed_references_are_4xx(api: TestClient, model_dir: Path, ref: str) -> None:
    register(api, "digits", pack_model(model_dir))
    name, _, version = ref.partition(":")
    response = api.get(f"/api/v1/models/{name}/versions/{version}")
    assert 400 <= response.status_code < 500


def test_a_lone_torchscript_file_registers_with_its_shape(api: TestClient, model_dir: Path) -> None:
    archive = pack_model(model_dir / "model.pt", input_shape=[-1, 64], classes=list("0123456789"))
    version = register(api, "flat", archive)
    assert version["signature"]["inputs"]["shape"] == [-1, 64]
    assert version["classes"] == list("0123456789")


def test_evaluation_refuses_the_model_channel_name(api: TestClient, model_dir: Path) -> None:
    register(api, "digits", pack_model(model_dir))
    body = {"input": model_dir.as_uri(), "channel": "model"}
    response = api.post("/api/v1/models/digits/versions/1/evaluations", json=body)
    assert response.status_code == 400 and "holds the model" in response.json()["message"]
    unknown = api.post(
        "/api/v1/models/digits/versions/1/evaluations",
        json={"input": "file:///no/such/dir", "channel": "test"},
    )
    assert unknown.status_code == 400 and "does not exist" in unknown.json()["message"]


def test_concurrent_registrations_never_fail_or_collide(api: TestClient, model_dir: Path) -> None:
    """Registrations racing each other and metric writes: each gets its own version or a
    409 to retry, never a 500, and the versions that went in count up without gaps."""
    from concurrent.futures import ThreadPoolExecutor

    upload_uri = upload(api, pack_model(model_dir))
    run = api.post("/api/v1/runs", json={"experiment": "busy"}).json()

    def register_one(_: int) -> int:
        body = {"upload_uri": upload_uri}
        return api.post("/api/v1/models/digits/versions", json=body).status_code

    def log_some(i: int) -> int:
        batch = {
            "batch_id": f"b{i}",
            "metrics": {
                "loss": {
                    "steps": list(range(100)),
                    "timestamps": [1e9] * 100,
                    "values": [0.5] * 100,
                }
            },
        }
        return api.post(f"/api/v1/runs/{run['id']}/metrics", json=batch).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = [(pool.submit(register_one, i), pool.submit(log_some, i)) for i in range(8)]
        registered = [r.result() for r, _ in futures]
        logged = [m.result() for _, m in futures]
    assert set(registered) <= {201, 409} and set(logged) == {200}
    summary = api.get(f"/api/v1/runs/{run['id']}").json()["metrics"]["loss"]
    assert summary["count"] == 800  # every concurrent batch merged into the summary
    versions = sorted(v["version"] for v in api.get("/api/v1/models/digits/versions").json())
    assert versions == list(range(1, registered.count(201) + 1))


def test_an_export_that_cannot_work_is_refused_before_a_job_starts(
    api: TestClient, model_dir: Path
) -> None:
    """A 4xx that says what to export instead; no job is queued for it."""
    manifest = json.loads((model_dir / "naiad-model.json").read_text())

    def version_of(name: str, **changes: object) -> None:
        files = {"naiad-model.json": json.dumps({**manifest, **changes}).encode()}
        files[str(changes.get("file", "model.pt"))] = b"x"
        register(api, name, tar_of(files))

    version_of("sm", format="sagemaker", file="code/inference.py", signature=None)
    version_of("graph", format="onnx", file="model.onnx")
    register(api, "digits", pack_model(model_dir))
    version_of("digits", quantization="dynamic-int8")
    cases = [
        ("sm/versions/1", 400, "no input shape is known to export it with. Save the network"),
        ("graph/versions/latest", 409, "graph is already an ONNX graph"),
        ("digits/versions/2", 409, "is quantized (dynamic-int8), and ONNX has no equivalent"),
    ]
    for path, status, words in cases:
        response = api.post(f"/api/v1/models/{path}/export", json={"format": "onnx"})
        assert response.status_code == status, response.text
        assert words in response.json()["message"]
    unknown = api.post("/api/v1/models/digits/versions/1/export", json={"format": "tflite"})
    assert unknown.status_code in (400, 422) and "onnx" in unknown.json()["message"]
    assert api.get("/api/v1/jobs").json() == []


def test_a_quantization_that_cannot_work_is_refused_before_a_job_starts(
    api: TestClient, model_dir: Path, tmp_path: Path
) -> None:
    """Static and QAT need data, float32 inputs and a torch format; each refusal is a 4xx
    sentence that says what to do, and no job is queued for it."""
    manifest = json.loads((model_dir / "naiad-model.json").read_text())

    def version_of(name: str, **changes: object) -> None:
        files = {"naiad-model.json": json.dumps({**manifest, **changes}).encode()}
        files[str(changes.get("file", "model.pt"))] = b"x"
        register(api, name, tar_of(files))

    data = tmp_path / "data"
    data.mkdir()
    uri = data.as_uri()
    register(api, "digits", pack_model(model_dir))
    version_of("digits", quantization="static-int8")
    version_of("graph", format="onnx", file="model.onnx")
    tokens = {"shape": [-1, 16], "dtype": "int64"}
    version_of("tokens", signature={"inputs": tokens})
    version_of("sm", format="sagemaker", file="code/inference.py", signature=None)
    cases = [
        ("digits/versions/1", {"method": "static"}, 400, "needs labelled data to calibrate"),
        ("digits/versions/1", {"method": "qat"}, 400, "needs labelled data to fine-tune on"),
        ("digits/versions/1", {"data": uri}, 400, "Dynamic quantization needs no data"),
        ("digits/versions/2", {"method": "qat", "data": uri}, 409, "already quantized"),
        ("graph/versions/1", {"method": "static", "data": uri}, 400, "graph:1 is onnx"),
        ("tokens/versions/1", {"method": "qat", "data": uri}, 400, "takes int64[N, 16]"),
        ("sm/versions/1", None, 400, "is a SageMaker model"),
        ("digits/versions/1", {"method": "int4"}, 400, "dynamic"),
        ("digits/versions/1", {"method": "qat", "data": uri, "epochs": 0}, 400, "epochs"),
        ("digits/versions/1", {"method": "static", "data": uri, "lr": 0.1}, 400, "lr set how QAT"),
        ("digits/versions/1", {"method": "static", "data": "file:///nowhere"}, 400, "not exist"),
    ]
    for path, body, status, words in cases:
        response = api.post(f"/api/v1/models/{path}/quantize", json=body)
        assert response.status_code in ((400, 422) if status == 400 else (status,)), response.text
        assert words in response.json()["message"], response.json()["message"]
    assert api.get("/api/v1/jobs").json() == []


def test_quantization_jobs_carry_their_method_and_data(
    api: TestClient, model_dir: Path, tmp_path: Path
) -> None:
    """No body is today's dynamic job; static and QAT jobs get the data as a channel."""
    register(api, "digits", pack_model(model_dir))
    dynamic = api.post("/api/v1/models/digits/versions/1/quantize")
    assert dynamic.status_code == 201, dynamic.text
    assert set(dynamic.json()["inputs"]) == {"model"}
    body = {"method": "qat", "data": tmp_path.as_uri(), "epochs": 2, "lr": 0.001}
    qat = api.post("/api/v1/models/digits/versions/1/quantize", json=body).json()
    assert qat["inputs"]["data"] == tmp_path.as_uri()
    assert qat["hyperparameters"] == {
        "model": "digits:1",
        "method": "qat",
        "epochs": 2,
        "lr": 0.001,
        "batch_size": 32,
    }
