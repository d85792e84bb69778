"""Static and QAT quantization end to end on a live server: the examples' digits CNN is
registered and evaluated, quantized by the registry's job through the CLI (static) and
the SDK (QAT); each copy is the next version, evaluated like its parent, and an endpoint
serves the QAT copy. Quantizations that cannot work fail with a sentence and leave the
registry as it was."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import naiad
from naiad.runtime import save_model
from naiad.testing.live import LiveServer

ROOT = Path(__file__).resolve().parents[2]


def cli(live: LiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "naiad.cli.main", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **live.environ(), "NAIAD_TOKEN": live.token, "COLUMNS": "200"},
        timeout=300,
    )


def digits_cnn() -> torch.nn.Module:
    """The examples' DigitsCNN, imported from examples/digits/train.py."""
    spec = importlib.util.spec_from_file_location("digits_train", ROOT / "examples/digits/train.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.DigitsCNN()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    sys.path.insert(0, str(ROOT / "examples" / "digits"))
    try:
        from prepare import prepare  # examples/digits/prepare.py
    finally:
        sys.path.remove(str(ROOT / "examples" / "digits"))
    return prepare(tmp_path_factory.mktemp("digits"))


def trained(directory: Path, data: dict[str, Path]) -> Path:
    """The CNN after 4 epochs on the training split, saved as TorchScript."""
    with np.load(data["train"] / "digits.npz") as arrays:
        x, y = torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["y"])
    torch.manual_seed(0)
    model = digits_cnn()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.002)
    for _ in range(4):
        order = torch.randperm(len(y))
        for i in range(0, len(y), 32):
            idx = order[i : i + 32]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return save_model(model.eval(), x[:1], directory, classes=[str(d) for d in range(10)])


def test_static_and_qat_copies_are_evaluated_and_served(
    server: LiveServer, data: dict[str, Path], tmp_path: Path
) -> None:
    client = naiad.Client(url=server.url, token=server.token)
    parent = client.models.register("digits", path=trained(tmp_path / "fp32", data))
    evaluation = client.models.evaluate("digits:1", str(data["test"]))
    assert evaluation.status == "Completed"
    fp32 = evaluation.metrics["accuracy"]
    assert fp32 > 0.9

    out = cli(server, "models", "quantize", "digits:1", "--method", "static", "--data",
              str(data["train"]), "--json")  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    static = json.loads(out.stdout)
    assert (static["version"], static["quantization"]) == (2, "static-int8")
    assert static["lineage"]["derived_from"] == "digits:1"
    assert static["lineage"]["hyperparameters"]["method"] == "static"
    assert static["size_bytes"] * 3 <= parent.size_bytes

    qat = client.models.quantize("digits:1", method="qat", data=data["train"], epochs=2)
    assert (qat.version, qat.quantization, qat.format) == (3, "qat-int8", "torchscript")
    assert qat.size_bytes * 3 <= parent.size_bytes

    for version in (2, 3):  # each evaluated on the data its parent was
        (child,) = client.evaluations.list(f"digits:{version}")
        assert child.status == "Completed" and child.input == evaluation.input
        assert child.metrics["accuracy"] >= fp32 - 0.02, (version, child.metrics, fp32)
    table = cli(server, "models", "show", "digits").stdout
    assert "static-int8" in table and "qat-int8" in table

    endpoint = client.endpoints.deploy("digits-qat", model="digits:3", wait=True, timeout=120)
    with np.load(data["test"] / "digits.npz") as arrays:
        x, y = arrays["x"][:64], arrays["y"][:64]
    answers = np.asarray(endpoint.predict(x))
    assert answers.shape == (64, 10)
    assert np.mean(answers.argmax(1) == y) >= 0.9
    client.endpoints.delete("digits-qat")


def test_a_quantization_that_cannot_work_says_why_and_changes_nothing(
    server: LiveServer, data: dict[str, Path], tmp_path: Path
) -> None:
    client = naiad.Client(url=server.url, token=server.token)
    client.models.register("shapes", path=trained(tmp_path / "fp32", data))

    no_data = cli(server, "models", "quantize", "shapes:1", "--method", "qat")
    assert no_data.returncode == 1
    assert "qat quantization needs labelled data to fine-tune on" in no_data.stderr

    rows = tmp_path / "rows"
    rows.mkdir()
    np.savez(rows / "rows.npz", x=np.zeros((16, 20), np.float32), y=np.zeros(16, np.int64))
    wrong = cli(server, "models", "quantize", "shapes:1", "--method", "static", "--data", str(rows))
    assert wrong.returncode == 1
    assert "rows of shape [20]" in wrong.stderr and "float32[N, 1, 8, 8]" in wrong.stderr
    assert [v.version for v in client.models.versions("shapes")] == [1]
