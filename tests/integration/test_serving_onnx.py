"""ONNX Runtime stays an optional extra: nothing loads it until an ONNX model is, and a
replica without it says what to install."""

import os
import subprocess
import sys
from pathlib import Path

import torch
from torch import nn

from naiad.runtime import save_model
from naiad.runtime.builtin.export import export_directory


def test_a_replica_without_onnx_runtime_says_what_to_install(tmp_path: Path) -> None:
    source = save_model(nn.Linear(4, 2), torch.rand(2, 4), tmp_path / "torch")
    export_directory(source, tmp_path / "onnx")
    blocker = tmp_path / "blocked"
    blocker.mkdir()
    (blocker / "onnxruntime.py").write_text("raise ImportError('not installed')\n")
    result = subprocess.run(
        [sys.executable, "-m", "naiad.serving.main", str(tmp_path / "onnx"), "--port", "0"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(blocker)},
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        "Serving an ONNX model needs the onnxruntime package, which is not installed here: "
        "pip install 'naiad[onnx]'."
    )


def test_the_server_and_a_torch_replica_never_import_it(tmp_path: Path) -> None:
    model = save_model(nn.Linear(4, 2), torch.rand(2, 4), tmp_path / "torch")
    code = (
        "import sys\n"
        "import naiad.server.app, naiad.serving.main, naiad.runtime.builtin.export\n"
        "from naiad.serving.loader import load_model\n"
        f"load_model({str(model)!r}, threads=1)\n"
        "print(','.join(m for m in ('onnxruntime', 'onnx') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
