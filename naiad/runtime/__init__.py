"""The library a training job imports: its context, distributed setup and checkpoints.

A script written for SageMaker runs without it (the same directories and ``SM_*``
variables are there); a script using it gets typed access to the same things::

    from naiad import runtime

    ctx = runtime.context()
    runtime.init_distributed()
    state = runtime.checkpoints.latest()
    sharded = runtime.parallelize(model, strategy="fsdp")  # or "ddp"
"""

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
]
