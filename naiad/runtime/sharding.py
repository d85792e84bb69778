"""Split the data (DDP) or the data and the model (FSDP) by one argument.

``parallelize`` joins the job's process group and wraps the network; what it returns
carries what a training loop needs around it: mixed precision, sharded checkpoints in
the job's checkpoint directory, the per-rank size of the model, and the consolidated
model for the registry::

    sharded = runtime.parallelize(model, strategy="fsdp", mixed_precision="bf16")
    optimizer = torch.optim.Adam(sharded.module.parameters(), lr=1e-3)
    step = sharded.load_checkpoint(optimizer) or 0
    for x, y in batches:
        with sharded.autocast():
            loss = loss_fn(sharded(x), y)
        optimizer.zero_grad()
        sharded.backward(loss)
        sharded.step(optimizer)
    sharded.save_checkpoint(optimizer, step)
    sharded.save_model(Net(), x[:1])  # full weights on rank 0, into model/
    sharded.close()

A sharded checkpoint is one folder per step, ``step-000000000042/``, written by every
rank into a hidden folder that rank 0 renames when the save is complete, so a crash
mid-save leaves the previous one the latest.
"""

import contextlib
import os
import re
import shutil
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from naiad.core.errors import InvalidInput
from naiad.runtime.distributed import DistInfo, init_distributed

if TYPE_CHECKING:  # torch loads on the first call, not with ``import naiad.runtime``
    import torch
    from torch import nn

Strategy = Literal["none", "ddp", "fsdp"]
Precision = Literal["bf16", "fp16"]

STEP_DIR = re.compile(r"^step-(\d{12})$")
STATE_DICT_FILE = "state_dict.pt"
# DCP names its index ``.metadata``; the checkpoint mirror skips dot-files as unfinished
# saves, so a visible copy travels with the shards and is put back on a machine without it.
_METADATA, _METADATA_COPY = ".metadata", "metadata"


def _step_dirs(where: Path) -> list[tuple[int, Path]]:
    if not where.is_dir():
        return []
    found = [(int(m[1]), p) for p in where.iterdir() if (m := STEP_DIR.match(p.name))]
    return sorted(found)


def latest_step(where: str | Path | None = None) -> int | None:
    """The newest complete sharded checkpoint's step in ``where`` (default: the job's), or None."""
    from naiad.runtime import checkpoints

    found = _step_dirs(Path(where) if where is not None else checkpoints.directory())
    return found[-1][0] if found else None


@contextlib.contextmanager
def _one_process_is_fine() -> Iterator[None]:
    """DCP warns on every save and load of a job without a process group; one is expected."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "torch.distributed is disabled", UserWarning)
        yield


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()


def _shard(
    model: "nn.Module",
    info: DistInfo,
    dtype: "torch.dtype | None",
    classes: Sequence[type] | None,
) -> None:
    """fully_shard each block, then the root, as FSDP2 asks: a block's parameters are
    gathered whole only while it runs; those in no block belong to the root's group."""
    import torch
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    # Every rank shards its own copy: start them all from rank 0's, as DDP does.
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            dist.broadcast(tensor, src=0)
    mesh = init_device_mesh(info.device.split(":")[0], (info.world_size,))
    block, root = MixedPrecisionPolicy(), MixedPrecisionPolicy()
    if dtype is not None:  # gradients are reduced in float32; the root's output (what the
        # loss sees) is float32, as autocast would leave it
        block = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32)
        root = MixedPrecisionPolicy(dtype, torch.float32, output_dtype=torch.float32)
    if classes:
        blocks = [m for m in model.modules() if m is not model and isinstance(m, tuple(classes))]
    else:
        blocks = [c for c in model.children() if any(True for _ in c.parameters())]
    for sub in reversed(blocks):  # inner blocks before the blocks that hold them
        fully_shard(sub, mesh=mesh, mp_policy=block)
    fully_shard(model, mesh=mesh, mp_policy=root)


class Parallel:
    """A network wrapped for one strategy, with what the training loop needs around it."""

    def __init__(
        self,
        module: "nn.Module",
        strategy: Strategy,
        info: DistInfo,
        precision: Precision | None,
        scaler: "torch.amp.GradScaler | None",
    ) -> None:
        self.module = module  # what to call: the DDP wrapper, or the model sharded in place
        self.strategy = strategy
        self.info = info
        self.precision = precision
        self.scaler = scaler

    @property
    def rank(self) -> int:
        return self.info.rank

    @property
    def world_size(self) -> int:
        return self.info.world_size

    @property
    def device(self) -> str:
        return self.info.device

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.module(*args, **kwargs)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """Where the forward pass and the loss run: autocast to the precision asked for
        (FSDP casts through its policy instead, so there it is a no-op)."""
        import torch

        if self.precision is None or self.strategy == "fsdp":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(device_type=self.device.split(":")[0], dtype=dtype)

    def backward(self, loss: "torch.Tensor") -> None:
        """``loss.backward()``, scaled first under fp16 so small gradients do not vanish."""
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()

    def step(self, optimizer: "torch.optim.Optimizer") -> None:
        """``optimizer.step()``; under fp16 the scaler's, which skips a step with inf/NaN."""
        if self.scaler is not None:
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()

    def param_bytes(self) -> int:
        """Bytes of parameters this rank holds: its shards under FSDP, the whole model else."""
        from torch.distributed.tensor import DTensor

        total = 0
        for p in self.module.parameters():
            local = p.to_local() if isinstance(p, DTensor) else p
            total += local.numel() * local.element_size()
        return total

    def log_param_bytes(self, step: int = 0) -> list[int]:
        """Every rank's ``param_bytes``, logged by rank 0 as ``param_bytes/rank{N}``.

        Rank 0 gathers and logs them all, so each point is logged once, through the same
        path as every other metric of the job's run. Returns the list on every rank.
        """
        import torch.distributed as dist

        from naiad.runtime.context import context

        mine = self.param_bytes()
        every = [mine]
        if dist.is_initialized():
            gathered: list[Any] = [None] * self.world_size
            dist.all_gather_object(gathered, mine)
            every = [int(b) for b in gathered]
        context().log_metrics({f"param_bytes/rank{r}": b for r, b in enumerate(every)}, step=step)
        return every

    def _state(self, optimizer: "torch.optim.Optimizer") -> dict[str, Any]:
        from torch.distributed.checkpoint.state_dict import get_state_dict

        model, optim = get_state_dict(self.module, optimizer)
        state: dict[str, Any] = {"model": model, "optim": optim}
        if self.scaler is not None:
            state["scaler"] = self.scaler.state_dict()
        return state

    def save_checkpoint(
        self,
        optimizer: "torch.optim.Optimizer",
        step: int,
        keep: int = 3,
        where: str | Path | None = None,
    ) -> Path:
        """Save model, optimizer (and grad scaler) state, each rank its own shards; every
        rank must call it. Keeps the newest ``keep`` steps; returns the step's folder."""
        import torch.distributed as dist
        from torch.distributed.checkpoint.state_dict_saver import save

        from naiad.runtime import checkpoints

        base = Path(where) if where is not None else checkpoints.directory()
        final = base / f"step-{step:012d}"
        partial = base / f".{final.name}.partial"
        if self.rank == 0:
            shutil.rmtree(partial, ignore_errors=True)
        _barrier()
        with _one_process_is_fine():
            save(self._state(optimizer), checkpoint_id=partial, no_dist=not dist.is_initialized())
        # Every rank has written. Rank 0's folder holds the index and, where all ranks share
        # the directory, every shard: renaming it publishes the step at once.
        if self.rank == 0:
            shutil.copyfile(partial / _METADATA, partial / _METADATA_COPY)
            shutil.rmtree(final, ignore_errors=True)  # the same step saved again
            os.replace(partial, final)
            _fsync_dir(base)
        _barrier()
        if partial.is_dir():  # a machine of its own (a gang's host): publish this rank's shards
            final.mkdir(exist_ok=True)
            for shard in partial.glob(f"__{self.rank}_*"):
                os.replace(shard, final / shard.name)
            with contextlib.suppress(OSError):
                partial.rmdir()  # the last of this machine's ranks to finish removes it
        for _, old in _step_dirs(base)[: -max(keep, 1)]:
            shutil.rmtree(old, ignore_errors=True)
        _barrier()
        return final

    def load_checkpoint(
        self, optimizer: "torch.optim.Optimizer", where: str | Path | None = None
    ) -> int | None:
        """Restore the newest sharded checkpoint into the model and optimizer; returns its
        step, or None on a first attempt. Every rank must call it."""
        import torch.distributed as dist
        from torch.distributed.checkpoint.state_dict import set_state_dict
        from torch.distributed.checkpoint.state_dict_loader import load

        from naiad.runtime import checkpoints

        base = Path(where) if where is not None else checkpoints.directory()
        chosen: list[Any] = [latest_step(base)]
        if dist.is_initialized():  # rank 0's view decides, so every rank loads the same step
            dist.broadcast_object_list(chosen, src=0)
        step = chosen[0]
        if step is None:
            return None
        folder = base / f"step-{step:012d}"
        index, copy = folder / _METADATA, folder / _METADATA_COPY
        if not index.exists() and copy.exists():  # restored by the mirror, which skips dot-files
            tmp = folder / f"{_METADATA}.{self.rank}.tmp"
            shutil.copyfile(copy, tmp)
            os.replace(tmp, index)  # atomic: ranks sharing the directory may race to it
        _barrier()
        state = self._state(optimizer)
        with _one_process_is_fine():
            load(state, checkpoint_id=folder, no_dist=not dist.is_initialized())
        set_state_dict(
            self.module, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"]
        )
        if self.scaler is not None:
            self.scaler.load_state_dict(state["scaler"])
        return int(step)

    def full_state_dict(self) -> dict[str, Any]:
        """The whole model's plain state_dict on CPU, on rank 0 (empty on the others): what
        the unwrapped network loads. Every rank must call it (FSDP gathers the shards)."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        if self.strategy == "none":  # nothing to gather: each rank has it all
            state = self.module.state_dict() if self.rank == 0 else {}
            return {k: v.detach().cpu() for k, v in state.items()}
        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        return get_model_state_dict(self.module, options=options)

    def save_model(
        self,
        model: "nn.Module",
        example_input: Any,
        directory: str | Path | None = None,
        **kwargs: Any,
    ) -> Path:
        """Consolidate the weights into ``model`` (a fresh, unwrapped instance of the
        network's class) and save it with ``runtime.save_model`` on rank 0, beside the
        full state_dict as ``state_dict.pt``. Every rank must call it."""
        import torch

        from naiad.runtime.context import context
        from naiad.runtime.models import save_model

        state = self.full_state_dict()
        target = Path(directory) if directory is not None else context().model_dir
        if self.rank == 0:
            model.load_state_dict(state)
            target.mkdir(parents=True, exist_ok=True)
            tmp = target / f".{STATE_DICT_FILE}.tmp"
            torch.save(state, tmp)
            os.replace(tmp, target / STATE_DICT_FILE)
            save_model(model.cpu(), example_input, target, **kwargs)
        _barrier()
        return target

    def close(self) -> None:
        """Leave the process group; every rank first waits for the others (a gloo rank
        that leaves while another still talks to it can abort the job)."""
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def parallelize(
    model: "nn.Module",
    strategy: Strategy = "ddp",
    *,
    mixed_precision: Precision | None = None,
    shard: Sequence[type] | None = None,
) -> Parallel:
    """Join the job's process group and wrap ``model`` for ``strategy``.

    ``"ddp"`` keeps a whole copy on every rank and averages gradients; ``"fsdp"`` shards
    each child module that has parameters (or each submodule of a class in ``shard``),
    then the root, so each rank holds 1/N of the parameters, gradients and optimizer
    state. With one process the model is returned unwrapped (strategy ``"none"``).
    ``mixed_precision="bf16"`` runs in bfloat16 on CPU or GPU; ``"fp16"`` needs a GPU and
    scales the loss with a ``GradScaler``.
    """
    import torch

    if strategy not in get_args(Strategy):
        raise InvalidInput(
            f"strategy must be one of {', '.join(get_args(Strategy))}; got {strategy!r}."
        )
    if mixed_precision is not None and mixed_precision not in get_args(Precision):
        raise InvalidInput(
            f"mixed_precision must be None, 'bf16' or 'fp16'; got {mixed_precision!r}."
        )
    info = init_distributed()
    cuda = info.device.startswith("cuda")
    if mixed_precision == "fp16" and not cuda:
        raise InvalidInput("mixed_precision='fp16' needs a GPU; on CPU use 'bf16'.")
    if info.world_size <= 1:
        strategy = "none"
    model.to(info.device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, None: None}[mixed_precision]
    module: nn.Module = model
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        module = DistributedDataParallel(model, device_ids=[info.local_rank] if cuda else None)
    elif strategy == "fsdp":
        _shard(model, info, dtype, shard)
    scaler = torch.amp.GradScaler("cuda") if mixed_precision == "fp16" else None
    return Parallel(module, strategy, info, mixed_precision, scaler)
