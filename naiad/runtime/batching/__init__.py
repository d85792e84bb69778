"""Batch sizes that fit and adapt: a finder, warm-up schedules and the noise-scale rule.

    from naiad.runtime import batching

    found = batching.find_batch_size(model, train_set, loss, optimizer, memory_budget="2GiB")
    dyn = batching.DynamicBatch(train_set, optimizer, batch_size=32, adaptive=True,
                                max_batch=found.batch_size * world_size, model=ddp_model)

``docs/batching.md`` says what each does and what the benchmark measured.
"""

from naiad.runtime.batching.dynamic import DynamicBatch
from naiad.runtime.batching.finder import BatchSizeResult, Trial, find_batch_size
from naiad.runtime.batching.noise import NoiseScale, efficiency
from naiad.runtime.batching.schedule import Warmup, lr_scale

__all__ = [
    "BatchSizeResult",
    "DynamicBatch",
    "NoiseScale",
    "Trial",
    "Warmup",
    "efficiency",
    "find_batch_size",
    "lr_scale",
]
