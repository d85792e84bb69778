"""examples/finetune end to end: a base ResNet-18 trained here and saved in torchvision's
layout, fine-tuned as a 2-process DDP job, registered with the base's fingerprint in its
lineage, deployed and asked for one prediction."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

import naiad
from naiad.models import zoo
from naiad.testing.live import LiveServer

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "finetune"


def base_checkpoint(folder: Path) -> Path:
    """A ResNet-18 trained for a few steps on random images, in torchvision's key layout."""
    torch.manual_seed(0)
    model = zoo.create("resnet18", num_classes=3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(3):
        x, y = torch.rand(8, 3, 32, 32), torch.randint(0, 3, (8,))
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    folder.mkdir()
    path = folder / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def test_finetune_a_checkpoint_register_and_serve(client_env: LiveServer, tmp_path: Path) -> None:
    data = tmp_path / "data"
    made = subprocess.run(
        [sys.executable, str(EXAMPLE / "make_images.py"), str(data)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    base = base_checkpoint(tmp_path / "base")
    fingerprint = zoo.fingerprint_file(base)

    client = naiad.Client()
    job = client.training_jobs.create(
        name="finetune-resnet18",
        entrypoint="train.py",
        source_dir=EXAMPLE,
        hyperparameters={"epochs": 3, "base_classes": 3, "base_sha256": fingerprint},
        inputs={
            "base": str(base.parent),
            "train": str(data / "train"),
            "validation": str(data / "validation"),
        },
        processes_per_node=2,
    )
    ended = job.wait(timeout=180)
    assert ended.status == "Completed", ended.status_reason

    version = client.models.register("finetuned", job=job.name)
    assert version.lineage.hyperparameters["base_sha256"] == fingerprint
    # what the script recorded itself reaches the lineage too, with no hyperparameter needed
    assert version.lineage.params["base_sha256"] == fingerprint
    assert version.lineage.params["base_source"] == "resnet18.safetensors"
    assert version.lineage.inputs["base"].endswith("base")
    # three colours told apart: the new head learnt, BatchNorm recalibrated on the new data
    assert float(version.lineage.metrics["val/accuracy"]) >= 0.7  # chance is 1/3
    assert version.classes == ["blue", "green", "red"]
    run = client.runs.get(version.lineage.run_id or "")
    assert run.params["base_sha256"] == fingerprint
    assert run.params["base_source"] == "resnet18.safetensors"

    image = np.load(sorted((data / "validation" / "red").iterdir())[0]).astype(np.float32) / 255
    endpoint = client.endpoints.deploy("finetuned", model="finetuned:1", wait=True, timeout=120)
    try:
        out = endpoint.predict(image[None])
        assert out.shape == (1, 3)
    finally:
        client.endpoints.delete("finetuned", wait=True, timeout=60)
