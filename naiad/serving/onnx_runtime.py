"""An ONNX graph behind the same call as a torch network: a tensor batch in, a tensor out.

ONNX Runtime is an optional dependency (the ``onnx`` extra), imported here only when an
``onnx`` model is loaded (the loader imports this module only then), so a server or a
torch replica never pays for it. Wrapping the session as a network lets the replica keep
one path for every format: the same batcher, codec, metrics and warm-up; the tensors
cross to and from numpy without a copy.
"""

from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from naiad.core.errors import NaiadError

INSTALL = "pip install 'naiad[onnx]'"


class OnnxRuntimeMissing(NaiadError):
    """The ``onnx`` extra is not installed where an ONNX model is loaded or exported."""

    code = "onnx_runtime_missing"


def require(module: str, what: str) -> ModuleType:
    """Import ``module`` (onnxruntime, onnx) or say which extra brings it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise OnnxRuntimeMissing(
            f"{what} needs the {module} package, which is not installed here: {INSTALL}."
        ) from None


class OnnxNetwork:
    """One ONNX Runtime session called like a torch module on a CPU tensor batch."""

    def __init__(self, session: Any) -> None:
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ValueError(
                f"the graph takes {len(inputs)} inputs and gives {len(outputs)} outputs; a "
                "replica serves graphs of one input and one output"
            )
        self._session = session
        self._input = inputs[0].name
        self._outputs = [outputs[0].name]

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        rows = np.ascontiguousarray(batch.numpy())  # no copy when already contiguous
        return torch.from_numpy(self._session.run(self._outputs, {self._input: rows})[0])


def load_session(path: Path, threads: int | None) -> OnnxNetwork:
    """``path`` in an ONNX Runtime session on the CPU provider.

    ``threads`` is the intra-op pool's size, as ``torch.set_num_threads`` is for a torch
    replica: 1 runs every operator on the calling thread (the model thread), and no pool
    thread spins between batches on a core the event loop needs.
    """
    ort = require("onnxruntime", "Serving an ONNX model")
    options = ort.SessionOptions()
    options.inter_op_num_threads = 1
    if threads is not None:
        options.intra_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return OnnxNetwork(session)
