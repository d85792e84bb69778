"""The library a training job imports: its context, distributed setup and checkpoints.

A script written for SageMaker runs without it (the same directories and ``SM_*``
variables are there); a script using it gets typed access to the same things::

    from naiad import runtime

    ctx = runtime.context()
    runtime.init_distributed()
    state = runtime.checkpoints.latest()
    sharded = runtime.parallelize(model, strategy="fsdp")  # or "ddp"
    rows = runtime.stream("train", label="label", shuffle_buffer=4096)  # a table channel

Batch sizes that fit and adapt are in ``naiad.runtime.batching`` (docs/batching.md).
"""

from typing import Any

from naiad.runtime import checkpoints
from naiad.runtime.context import Context, Hyperparameters, context
from naiad.runtime.distributed import init_distributed
from naiad.runtime.models import save_model
from naiad.runtime.sharding import Parallel, parallelize

__all__ = [
    "Context",
    "Hyperparameters",
    "Parallel",
    "checkpoints",
    "context",
    "init_distributed",
    "parallelize",
    "save_model",
    "stream",
    "table",
]


def __getattr__(name: str) -> Any:
    """``stream`` and ``table`` import torch and pyarrow: only when a script asks for them."""
    if name in ("stream", "table", "ChannelStream"):
        from naiad.runtime import streams

        return getattr(streams, name)
    raise AttributeError(f"module 'naiad.runtime' has no attribute {name!r}")
