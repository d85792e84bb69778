"""Registering the model of a SageMaker-style job, which saves files but no naiad-model.json:
TorchScript and torch.export files register and load as an endpoint loads them; a
torch.save state_dict is refused with what to do instead."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import naiad
from naiad.serving.loader import load_model
from naiad.testing.live import LiveServer

SCRIPT = """
import argparse, os, torch
from torch import nn

parser = argparse.ArgumentParser()
parser.add_argument("--kind")
kind = parser.parse_args().kind
torch.manual_seed(0)
net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval()
out = os.environ["SM_MODEL_DIR"]
if kind == "script":
    torch.jit.script(net).save(os.path.join(out, "model.pth"))
elif kind == "export":
    batch = torch.export.Dim("batch")
    program = torch.export.export(net, (torch.zeros(2, 1, 8, 8),), dynamic_shapes=({0: batch},))
    torch.export.save(program, os.path.join(out, "model.pt2"))
else:
    torch.save(net.state_dict(), os.path.join(out, "model.pth"))
"""


def cli(live: LiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "naiad.cli.main", *args],
        env={**os.environ, **live.environ(), "COLUMNS": "400"},
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.fixture(scope="module")
def jobs(live: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One Completed job per way of saving: kind -> job name."""
    source = tmp_path_factory.mktemp("src")
    (source / "train.py").write_text(textwrap.dedent(SCRIPT))
    client = naiad.Client(url=live.url, token=live.token)
    handles = {
        kind: client.training_jobs.create(
            name=f"saves-{kind}",
            entrypoint="train.py",
            source_dir=source,
            hyperparameters={"kind": kind},
        )
        for kind in ("script", "export", "state")
    }
    for handle in handles.values():
        done = handle.wait(timeout=180)
        assert done.status == "Completed", done.status_reason
    return {kind: handle.name for kind, handle in handles.items()}


def expected() -> torch.Tensor:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)).eval()
    with torch.no_grad():
        return net(torch.ones(3, 1, 8, 8))


def served(live: LiveServer, version: dict) -> torch.Tensor:
    """What a replica computes: the loader on the version's stored directory."""
    model = load_model(live.home / "artifacts" / version["artifact_uri"])
    return model(torch.ones(3, 1, 8, 8))


def test_torchscript_needs_its_input_shape_then_serves(
    live: LiveServer, jobs: dict[str, str]
) -> None:
    missing = cli(live, "models", "register", "sm-script", "--job", jobs["script"])
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    message = " ".join(missing.stderr.split())
    assert "model.pth is TorchScript" in message
    assert f"naiad models register sm-script --job {jobs['script']} --input-shape" in message
    out = cli(
        live,
        "models",
        "register",
        "sm-script",
        "--job",
        jobs["script"],
        "--input-shape",
        "-1,1,8,8",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    version = json.loads(out.stdout)
    assert version["format"] == "torchscript" and version["version"] == 1
    assert version["signature"]["inputs"] == {"shape": [-1, 1, 8, 8], "dtype": "float32"}
    assert version["lineage"]["job"] == jobs["script"]
    assert torch.allclose(served(live, version), expected())


def test_torch_export_registers_with_the_shape_it_records(
    live: LiveServer, jobs: dict[str, str]
) -> None:
    out = cli(live, "models", "register", "sm-export", "--job", jobs["export"], "--json")
    assert out.returncode == 0, out.stderr
    version = json.loads(out.stdout)
    assert version["format"] == "torch_export"
    assert version["signature"]["inputs"] == {"shape": [-1, 1, 8, 8], "dtype": "float32"}
    assert torch.allclose(served(live, version), expected())


def test_a_state_dict_is_refused_with_what_to_do(live: LiveServer, jobs: dict[str, str]) -> None:
    out = cli(
        live, "models", "register", "sm-state", "--job", jobs["state"], "--input-shape", "-1,1,8,8"
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr + out.stdout
    (line,) = out.stderr.strip().splitlines()
    assert "model.pth was written by torch.save" in line
    assert "naiad.runtime.save_model(model, example_input)" in line
    assert "torch.jit.script(model).save(" in line
    assert cli(live, "models", "show", "sm-state").returncode == 1  # nothing registered
