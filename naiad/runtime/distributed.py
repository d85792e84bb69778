"""torch.distributed from torchrun's variables: gloo on CPU, NCCL on GPU."""

import os
from dataclasses import dataclass

from naiad.runtime.elastic import report_round


@dataclass(frozen=True)
class DistInfo:
    rank: int
    local_rank: int
    world_size: int
    backend: str | None  # None when running as a single process
    device: str


def init_distributed(backend: str | None = None) -> DistInfo:
    """Join the process group torchrun set up; a no-op for a single process.

    Picks NCCL when CUDA is available (and pins this rank to its local GPU), else gloo.
    """
    import torch
    import torch.distributed as dist

    rank = int(os.environ.get("RANK", 0))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    cuda = torch.cuda.is_available()
    device = f"cuda:{local_rank}" if cuda else "cpu"
    if cuda:
        torch.cuda.set_device(local_rank)
    report_round()  # an elastic job's round: its size (the step follows from checkpoints)
    if world_size <= 1:
        return DistInfo(rank, local_rank, world_size, None, device)
    backend = backend or ("nccl" if cuda else "gloo")
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistInfo(rank, local_rank, world_size, backend, device)
