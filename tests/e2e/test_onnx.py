"""ONNX end to end on a live server: a digits CNN is registered and evaluated, exported to
ONNX through the CLI (a job, then the next version, evaluated like its parent), and both
versions are deployed; the front door answers the same through ONNX Runtime as through
torch, in JSON and .npy, with the endpoint's metrics counting the requests."""

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import naiad
from naiad.runtime import save_model
from naiad.testing.live import LiveServer


def cli(server: LiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "naiad.cli.main", *args],
        capture_output=True,
        text=True,
        env={**server.environ(), "NAIAD_TOKEN": server.token, "COLUMNS": "200"},
        timeout=300,
    )


def trained_digits(directory: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """A small CNN fitted for a moment on load_digits (real answers, not ties), saved as
    TorchScript; and held-out images with their labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images[:, None] / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))
    optimizer = torch.optim.Adam(module.parameters(), lr=0.01)
    train_x, train_y = torch.from_numpy(x[:1400]), torch.from_numpy(y[:1400])
    for step in range(150):
        batch = slice((step * 64) % 1344, (step * 64) % 1344 + 64)
        optimizer.zero_grad()
        nn.functional.cross_entropy(module(train_x[batch]), train_y[batch]).backward()
        optimizer.step()
    module.eval()
    classes = [str(d) for d in range(10)]
    return save_model(module, train_x[:1], directory, classes=classes), x[1400:], y[1400:]


def test_export_evaluate_and_serve_like_the_torch_version(
    server: LiveServer, tmp_path: Path
) -> None:
    client = naiad.Client(url=server.url, token=server.token)
    model_dir, x_test, y_test = trained_digits(tmp_path / "model")
    test_dir = tmp_path / "test"
    test_dir.mkdir()
    np.savez(test_dir / "digits.npz", x=x_test, y=y_test)
    client.models.register("digits", path=model_dir)
    parent = client.models.evaluate("digits:1", str(test_dir))
    assert parent.status == "Completed" and parent.metrics["accuracy"] > 0.8

    out = cli(server, "models", "export", "digits:1", "--format", "onnx", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    exported = json.loads(out.stdout)
    assert (exported["version"], exported["format"]) == (2, "onnx")
    assert exported["lineage"]["derived_from"] == "digits:1"
    assert exported["signature"]["inputs"] == {"shape": [-1, 1, 8, 8], "dtype": "float32"}
    assert exported["classes"] == [str(d) for d in range(10)]

    (child,) = client.evaluations.list("digits:2")  # evaluated on the parent's data
    assert child.status == "Completed" and child.input == parent.input
    assert child.metrics["accuracy"] == parent.metrics["accuracy"]
    assert child.confusion_matrix == parent.confusion_matrix
    assert child.metrics["loss"] == pytest.approx(parent.metrics["loss"], abs=1e-5)

    again = cli(server, "models", "export", "digits:2")
    assert again.returncode == 1 and "digits:2 is already an ONNX graph" in again.stderr

    torch_ep = client.endpoints.deploy("digits-torch", model="digits:1", wait=True, timeout=120)
    onnx_ep = client.endpoints.deploy("digits-onnx", model="digits:2", wait=True, timeout=120)
    five = {"inputs": x_test[:5].tolist()}
    by_torch, by_onnx = torch_ep.invoke(five), onnx_ep.invoke(five)
    assert by_onnx["labels"] == by_torch["labels"]
    np.testing.assert_allclose(
        by_onnx["predictions"], by_torch["predictions"], rtol=1e-4, atol=1e-5
    )
    rows = x_test[:64]
    np.testing.assert_allclose(onnx_ep.predict(rows), torch_ep.predict(rows), rtol=1e-4, atol=1e-5)

    def one(i: int) -> list[float]:
        return onnx_ep.invoke({"inputs": x_test[i].tolist()})["predictions"][0]

    with ThreadPoolExecutor(16) as pool:  # concurrent single rows, batched by the replica
        answers = list(pool.map(one, range(64)))
    np.testing.assert_allclose(answers, torch_ep.predict(rows), rtol=1e-4, atol=1e-5)

    deadline = time.monotonic() + 30  # the keeper scrapes the replicas' figures every few s
    while (served := onnx_ep.metrics().variants[0].requests) < 66:
        assert time.monotonic() < deadline, f"the endpoint counted {served} requests of 66"
        time.sleep(0.5)
    assert onnx_ep.metrics().variants[0].errors == 0
