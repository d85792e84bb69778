"""The library a training job imports: its context, distributed setup and checkpoints.

A script written for SageMaker runs without it (the same directories and ``SM_*``
variables are there); a script using it gets typed access to the same things::

    from naiad import runtime

    ctx = runtime.context()
    runtime.init_distributed()
    state = runtime.checkpoints.latest()
"""

from naiad.runtime import checkpoints
from naiad.runtime.context import Context, Hyperparameters, context
from naiad.runtime.distributed import init_distributed
from naiad.runtime.models import save_model

__all__ = [
    "Context",
    "Hyperparameters",
    "checkpoints",
    "context",
    "init_distributed",
    "save_model",
]
