"""A training loop's batches, of a size that warms up and then adapts as training goes.

``DynamicBatch`` owns the batch size: it hands out each process's batches, scales the
learning rate with the global batch, logs both per step, and, with ``adaptive=True``,
measures the gradient noise scale while training and moves the global batch to the size
of the best goodput (``noise.py``), within the bounds given. Every process's batch stays
the same size: the global batch is a multiple of the world size, and a change takes
effect at the same step on every rank, after the batches a DataLoader's workers already
prefetched.
"""

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from naiad.core.errors import InvalidInput
from naiad.runtime.batching import noise as noise_scale
from naiad.runtime.batching.schedule import Warmup, candidates, lr_scale, round_to


@dataclass
class _HookState:
    """What the DDP communication hook adds up: this rank's squared gradient norm, taken
    from each bucket before it is averaged across ranks."""

    active: bool = False  # only on the steps that measure: no work on the others
    local_sq: Any = 0.0


def _grad_sq(parameters: list[Any]) -> float:
    return float(sum(p.grad.float().pow(2).sum() for p in parameters if p.grad is not None))


def _split(batch: Any, at: int) -> tuple[Any, Any]:
    """A batch cut in two along its first dimension: tensors, tuples, lists or dicts."""
    import torch

    if isinstance(batch, torch.Tensor):
        return batch[:at], batch[at:]
    if isinstance(batch, tuple | list):
        parts = [_split(part, at) for part in batch]
        return type(batch)(p[0] for p in parts), type(batch)(p[1] for p in parts)
    if isinstance(batch, dict):
        by_key = {k: _split(v, at) for k, v in batch.items()}
        return {k: p[0] for k, p in by_key.items()}, {k: p[1] for k, p in by_key.items()}
    raise InvalidInput(
        "An adaptive batch size on one process measures the gradient noise on two parts of "
        f"a batch, and cannot cut a {type(batch).__name__} in two: give batches as tensors, "
        "or tuples, lists or dicts of them."
    )


class _Batches:
    """The DataLoader's batch sampler: one epoch's permutation, cut into global batches of
    the size each step asks for, of which this rank takes its own slice."""

    def __init__(self, owner: "DynamicBatch", epoch: int, offset: int) -> None:
        self.owner, self.epoch, self.offset = owner, epoch, offset

    def __iter__(self) -> Iterator[list[int]]:
        import torch

        owner = self.owner
        n = len(owner.dataset)
        generator = torch.Generator().manual_seed(owner.seed + self.epoch)
        order = torch.randperm(n, generator=generator).tolist()
        offset = self.offset
        while True:
            number = owner._produced
            size = owner.batch_size_at(number)
            if offset + size > n:  # the rest of the epoch is too short for one more batch
                return
            per_rank = size // owner.world_size
            mine = order[offset + owner.rank * per_rank : offset + (owner.rank + 1) * per_rank]
            offset += size
            owner._ends[number] = (self.epoch, offset)
            owner._produced += 1
            yield mine

    def __len__(self) -> int:
        size = self.owner.batch_size_at(self.owner.global_step)
        return max(0, (len(self.owner.dataset) - self.offset) // size)


class DynamicBatch:
    """Batches of a global size that warms up, then adapts, with the learning rate scaled.

    ``batch_size`` is the global batch the optimiser's learning rates were tuned at (``B_0``)
    and the first step's size. ``warmup_to`` and ``warmup_steps`` ramp it linearly; with
    ``adaptive``, the size then moves within ``min_batch``..``max_batch`` (the finder's
    result times the world size is a good ``max_batch``). On one process the noise is
    measured in ``backward`` (a plain ``loss.backward()`` measures nothing); under torchrun
    it is measured in ``step``, whichever backward ran. ``lr_rule`` is
    ``linear``, ``sqrt`` or ``none`` (``schedule.py``). Under torchrun, pass the
    DDP-wrapped model: a communication hook reads each rank's own gradient before DDP
    averages it.

    The loop::

        for epoch in range(epochs):
            for batch in dyn.batches(epoch):
                dyn.backward(lambda b: loss_fn(model(b[0]), b[1]), batch)
                dyn.step()                      # optimizer.step(), zero_grad, lr, logs
    """

    def __init__(
        self,
        dataset: Any,
        optimizer: Any,
        *,
        batch_size: int,
        model: Any = None,
        warmup_to: int | None = None,
        warmup_steps: int = 0,
        adaptive: bool = False,
        min_batch: int | None = None,
        max_batch: int | None = None,
        lr_rule: str = "sqrt",
        measure_every: int = 10,
        decide_every: int = 50,
        multiple_of: int = 1,
        seed: int = 0,
        num_workers: int = 0,
        collate_fn: Any = None,
        log_every: int = 1,
    ) -> None:
        import torch.distributed as dist

        distributed = dist.is_available() and dist.is_initialized()
        self.world_size = dist.get_world_size() if distributed else 1
        self.rank = dist.get_rank() if distributed else 0
        self.granule = self.world_size * multiple_of
        if batch_size < 1 or batch_size % self.granule:
            raise InvalidInput(
                f"batch_size {batch_size} must be a multiple of {self.granule} (the "
                f"{self.world_size} processes times multiple_of={multiple_of}), so that every "
                "process takes a batch of the same size."
            )
        lr_scale(batch_size, batch_size, lr_rule)  # a clear error for an unknown rule
        self.dataset, self.optimizer, self.model = dataset, optimizer, model
        self.base_batch, self.lr_rule, self.seed = batch_size, lr_rule, seed
        self.adaptive = adaptive
        self.min_batch = round_to(min_batch or batch_size, self.granule)
        self.max_batch = round_to(min(max_batch or 16 * batch_size, len(dataset)), self.granule)
        if self.max_batch < self.min_batch:
            raise InvalidInput(
                f"max_batch ({max_batch}) is below min_batch ({self.min_batch}); the data set "
                f"has {len(dataset)} rows."
            )
        self.warmup = (
            Warmup(batch_size, warmup_to, warmup_steps, self.granule)
            if warmup_to is not None
            else None
        )
        self.measure_every, self.decide_every = measure_every, decide_every
        self.log_every = log_every
        self.num_workers, self.collate_fn = num_workers, collate_fn
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.noise = noise_scale.NoiseScale()
        self.times = noise_scale.StepTimes()
        self.changes: list[dict[str, Any]] = []
        self.global_step, self.samples = 0, 0
        self._resizes: list[tuple[int, int]] = []  # (from step, global size), adaptive only
        self._produced = 0
        self._ends: dict[int, tuple[int, int]] = {}  # batch number -> (epoch, offset after)
        self._resume: tuple[int, int] = (0, 0)  # (epoch, offset) where the next batch starts
        self._last_step_at: float | None = None
        self._hook: _HookState | None = None
        self._measured_step = False  # a step split in two for a measurement: slower
        self._parameters = [p for g in optimizer.param_groups for p in g["params"]]
        if adaptive and self.world_size > 1:
            self._attach_hook(model)
        self._apply_lr()

    def _attach_hook(self, model: Any) -> None:
        from torch.nn.parallel import DistributedDataParallel

        if not isinstance(model, DistributedDataParallel):
            raise InvalidInput(
                "An adaptive batch size under torchrun needs the DDP-wrapped model "
                "(DynamicBatch(..., model=DistributedDataParallel(model))): it reads each "
                "rank's own gradient before DDP averages it."
            )
        import torch
        import torch.distributed as dist
        from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

        def measure_then_allreduce(
            state: _HookState,
            bucket: dist.GradBucket,  # type: ignore[name-defined]  # DDP checks this annotation
        ) -> torch.futures.Future[torch.Tensor]:
            if state.active:  # the bucket holds this rank's own gradients until the allreduce
                state.local_sq = state.local_sq + bucket.buffer().float().pow(2).sum()
            return default_hooks.allreduce_hook(None, bucket)  # type: ignore[arg-type]

        self._hook = _HookState(active=self._measuring())
        model.register_comm_hook(self._hook, measure_then_allreduce)

    # the size of each step

    def batch_size_at(self, step: int) -> int:
        """The global batch of ``step``: the warm-up's, then the latest resize's."""
        size = self.base_batch
        if self.warmup is not None:
            size = self.warmup.batch_size(step)
        for start, resized in self._resizes:
            if start <= step:
                size = resized
        return size

    @property
    def batch_size(self) -> int:
        """The global batch of the step about to run."""
        return self.batch_size_at(self.global_step)

    @property
    def lr_scale(self) -> float:
        return lr_scale(self.batch_size, self.base_batch, self.lr_rule)

    def set_base_lr(self, lr: float | list[float]) -> None:
        """Change the learning rates the scaling starts from (a schedule of your own)."""
        self.base_lrs = list(lr) if isinstance(lr, list) else [lr] * len(self.base_lrs)
        self._apply_lr()

    def _apply_lr(self) -> None:
        scale = self.lr_scale
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * scale

    # the loop

    def batches(self, epoch: int) -> Iterator[Any]:
        """This process's batches of ``epoch`` (the rest of it, after a resume)."""
        from torch.utils.data import DataLoader

        resume_epoch, offset = self._resume
        offset = offset if epoch == resume_epoch else 0
        self._produced = self.global_step  # batches drawn but never used (a break) are dropped
        self._ends.clear()
        self._last_step_at = None  # the gap before an epoch (evaluation) is not a step's time
        kwargs: dict[str, Any] = {"num_workers": self.num_workers}
        if self.collate_fn is not None:
            kwargs["collate_fn"] = self.collate_fn
        loader = DataLoader(self.dataset, batch_sampler=_Batches(self, epoch, offset), **kwargs)
        return iter(loader)

    def backward(self, compute_loss: Callable[[Any], Any], batch: Any) -> Any:
        """``compute_loss(batch).backward()``; returns the loss, detached. On one process
        with ``adaptive``, every ``measure_every`` steps it runs as two backward passes, a
        quarter of the batch and then the rest, to measure the gradient noise at two batch
        sizes with the same weights; the gradient the optimiser gets is the same."""
        rows = self.batch_size
        if self._hook is not None or rows < 4 or not self._measuring():
            loss = compute_loss(batch)
            loss.backward()
            return loss.detach()
        self._measured_step = True
        first_rows = rows // 4  # the further apart the two sizes, the steadier the estimate
        first, rest = _split(batch, first_rows)
        loss_first = compute_loss(first)
        (loss_first * (first_rows / rows)).backward()
        small_sq = _grad_sq(self._parameters) * (rows / first_rows) ** 2
        loss_rest = compute_loss(rest)
        (loss_rest * ((rows - first_rows) / rows)).backward()
        self.noise.update(small_sq, first_rows, _grad_sq(self._parameters), rows)
        mixed = loss_first.detach() * first_rows + loss_rest.detach() * (rows - first_rows)
        return mixed / rows

    def _measuring(self) -> bool:
        """Whether this step measures the gradient noise."""
        return self.adaptive and self.global_step % self.measure_every == 0

    def _measure_ranks(self, size: int) -> None:
        import torch
        import torch.distributed as dist

        assert self._hook is not None
        local, self._hook.local_sq = self._hook.local_sq, 0.0
        if not self._measuring():
            return
        device = self._parameters[0].device
        summed = torch.as_tensor(local, dtype=torch.float64, device=device).reshape(1)
        dist.all_reduce(summed)
        self.noise.update(
            float(summed.item()) / self.world_size,
            size // self.world_size,
            _grad_sq(self._parameters),
            size,
        )

    def step(self) -> None:
        """The optimiser's step, then this step's bookkeeping: the gradient noise measured,
        the step's time, the size and learning rate logged, a resize considered, the next
        step's learning rate. Call it where ``optimizer.step()`` was, after the backward."""
        if self._hook is not None:
            self._measure_ranks(self.batch_size)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        size = self.batch_size
        now = time.perf_counter()
        settled = self.global_step - 2 >= max(
            (start for start, _ in self._resizes if start <= self.global_step), default=0
        )  # a size's first steps grow the allocator's pools: not its speed
        if self._last_step_at is not None and settled and not self._measured_step:
            self.times.add(size, now - self._last_step_at, self.global_step)
        self._last_step_at, self._measured_step = now, False
        if self.global_step % self.log_every == 0:
            self._log(size)
        self.samples += size
        self._resume = self._ends.pop(self.global_step, self._resume)
        self.global_step += 1
        if self.adaptive and self.global_step % self.decide_every == 0:
            self._consider_resize()
        if self._hook is not None:
            self._hook.active = self._measuring()
        self._apply_lr()

    def _log(self, size: int) -> None:
        from naiad.runtime.context import context

        figures = {"batch/size": float(size), "batch/lr": self.optimizer.param_groups[0]["lr"]}
        value = self.noise.value
        if value is not None:
            figures["batch/noise_scale"] = value
            figures["batch/efficiency"] = noise_scale.efficiency(size, self.base_batch, value)
        context().log_metrics(figures, step=self.global_step)

    # resizing

    def _consider_resize(self) -> None:
        current = self.batch_size
        choice = self._choose(current) if self.rank == 0 else None
        size, why = self._agree(choice)
        if size is not None and size != current:
            # after the batches the loader's workers have already drawn at the old size
            start = self.global_step + (2 * self.num_workers if self.num_workers else 0)
            self.resize(size, why, start)

    def _choose(self, current: int) -> noise_scale.Choice | None:
        warming = self.warmup is not None and self.global_step < self.warmup.steps
        value = self.noise.value
        if warming or value is None or self.noise.samples < 5:
            return None
        return noise_scale.choose(
            current,
            candidates(self.min_batch, self.max_batch, self.granule),
            self.base_batch,
            value,
            self.times,
            now=self.global_step,
        )

    def _agree(self, choice: noise_scale.Choice | None) -> tuple[int | None, str]:
        """Rank 0's choice, on every rank: their step times differ, and every rank must
        resize at the same step."""
        decided: list[Any] = [choice.batch, choice.why] if choice is not None else [None, ""]
        if self.world_size > 1:
            import torch.distributed as dist

            dist.broadcast_object_list(decided, src=0)
        return decided[0], decided[1]

    def resize(self, size: int, why: str, start: int | None = None) -> None:
        """Set the global batch from step ``start`` (the next step by default), recorded
        with ``why``. Rounded down to a multiple of the world size."""
        from naiad.runtime.context import context

        start = self.global_step if start is None else start
        size = round_to(size, self.granule)
        change = {"step": start, "from": self.batch_size_at(start), "to": size, "why": why}
        self._resizes.append((start, size))
        self.changes.append(change)
        ctx = context()
        if not ctx.is_main:
            return
        print(f"batch size: {change['from']} -> {size} at step {start} ({why})", flush=True)
        run = ctx.tracking_run()
        if run is not None:
            run.set_tags({"naiad.batch_size": f"{size} from step {start}: {why}"[:500]})
        if ctx.job_name is not None:
            ctx.output_dir.mkdir(parents=True, exist_ok=True)
            (ctx.output_dir / "batch_sizes.json").write_text(json.dumps(self.changes, indent=1))

    # checkpoints

    def state_dict(self) -> dict[str, Any]:
        """Where the loop is and what it has measured: save it with the model's checkpoint."""
        return {
            "step": self.global_step,
            "samples": self.samples,
            "resume": list(self._resume),
            "resizes": [list(r) for r in self._resizes],
            "changes": self.changes,
            "noise": self.noise.state_dict(),
            "times": self.times.state_dict(),
            "base_lrs": self.base_lrs,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume; with another world size, global sizes round to its multiple."""
        self.global_step, self.samples = state["step"], state["samples"]
        epoch, offset = state["resume"]
        self._resume = (int(epoch), int(offset))
        self._resizes = [(int(s), round_to(int(b), self.granule)) for s, b in state["resizes"]]
        self.changes = list(state["changes"])
        self.noise.load_state_dict(state["noise"])
        self.times.load_state_dict(state["times"])
        self.base_lrs = list(state["base_lrs"])
        self._apply_lr()
