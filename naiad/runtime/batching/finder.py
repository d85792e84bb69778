"""The largest batch that fits, found with real training steps before training starts.

As Lightning's ``BatchSizeFinder`` does: double the batch until a step no longer fits, then
bisect between the last size that fit and the first that did not. Each trial runs a real
forward, backward and optimiser step on a batch drawn from the data set, and the model
and optimiser are put back as they were afterwards, so the search changes nothing.

What "fits" means depends on the device:
- on CUDA, the step does not run out of memory, and its peak (``max_memory_allocated``)
  stays under the device's memory (or ``memory_budget``) less the headroom;
- on the CPU, where running out of memory means the kernel kills the job, the process's
  resident memory grows by no more than ``memory_budget`` less the headroom over what it
  was when the search began: gradients, optimiser state, activations, and the kernels'
  own workspaces (a convolution's unfolded input is often the largest of all), as
  Linux's peak resident set (VmHWM, reset before each trial) counts them.
"""

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from naiad.core.errors import InvalidInput
from naiad.core.units import mebibytes, parse_size

LossFn = Callable[[Any, Any], Any]  # (model, batch) -> a scalar loss tensor


def parse_bytes(value: int | str) -> int:
    """``"512MiB"``, ``"2 GB"``, ``"1.5g"`` or a number of bytes; powers of 1024 either way."""
    size = value if isinstance(value, int) else parse_size(value)
    if size is None:
        raise InvalidInput(
            f"memory_budget {value!r} is not a size: give bytes or a number with a unit, "
            "such as '512MiB' or '2GiB'."
        )
    return int(size)


@dataclass(frozen=True)
class Trial:
    batch_size: int
    fits: bool
    peak_bytes: int | None  # None when the step ran out of memory before a peak was read
    seconds: float  # the step's wall time: the finder's guess at the time per step

    def describe(self) -> str:
        peak = "out of memory" if self.peak_bytes is None else mebibytes(self.peak_bytes)
        return f"{self.batch_size}: {peak}, {'fits' if self.fits else 'too big'}"


@dataclass(frozen=True)
class BatchSizeResult:
    """The size chosen, what bounded it, and every trial, in the order they ran."""

    batch_size: int
    limit: str
    trials: list[Trial]
    dataset: Any = field(repr=False)

    def loader(self, **kwargs: Any) -> Any:
        """A DataLoader over the data set with the size found; ``kwargs`` go to it."""
        from torch.utils.data import DataLoader

        return DataLoader(self.dataset, batch_size=self.batch_size, **kwargs)

    def describe(self) -> str:
        tried = "; ".join(t.describe() for t in self.trials)
        return f"batch size {self.batch_size}, bounded by {self.limit} (tried {tried})"


def current_rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def reset_peak_rss() -> None:
    """Linux's ``clear_refs`` 5: the process's peak resident set (VmHWM) starts again from
    its resident set now, so each trial reads a peak of its own."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        raise InvalidInput(
            "On the CPU the batch-size finder reads the process's peak memory from Linux's "
            "/proc/self (clear_refs and VmHWM), which this system does not offer; pass "
            "batch_size yourself."
        ) from None


def release_freed_memory() -> None:
    """glibc keeps freed memory for reuse; hand it back (``malloc_trim``), so a trial's
    peak does not start from a larger trial's leftovers."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None:
        return
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None)
    if trim is not None:
        trim(0)


def peak_rss() -> int:
    """VmHWM: the most resident memory since the last ``reset_peak_rss``."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise InvalidInput("/proc/self/status has no VmHWM line; pass batch_size yourself.")


def _device(model: Any) -> Any:
    import torch

    for parameter in model.parameters():
        return parameter.device
    return torch.device("cpu")


def _run_steps(model: Any, batch: Any, loss: LossFn, optimizer: Any, steps: int) -> None:
    for _ in range(steps):
        value = loss(model, batch)
        value.backward()
        if optimizer is not None:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        else:
            model.zero_grad(set_to_none=True)


def _first_batch(dataset: Any, size: int, collate_fn: Any) -> Any:
    from torch.utils.data import DataLoader

    kwargs = {"collate_fn": collate_fn} if collate_fn is not None else {}
    return next(iter(DataLoader(dataset, batch_size=size, shuffle=False, **kwargs)))


class _Prober:
    """Runs one trial: the peak memory of ``steps`` real steps at a given size."""

    def __init__(
        self, model: Any, dataset: Any, loss: LossFn, optimizer: Any, budget: int, steps: int
    ) -> None:
        self.model, self.dataset, self.loss, self.optimizer = model, dataset, loss, optimizer
        self.budget, self.steps = budget, steps
        self.cuda = _device(model).type == "cuda"
        if not self.cuda:  # before any trial allocates, and after glibc hands back what it
            release_freed_memory()  # can: the trials trim too, so from the same footing
        self.baseline = 0 if self.cuda else current_rss()

    def __call__(self, size: int, batch: Any) -> Trial:
        import torch

        started = time.perf_counter()
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            try:
                _run_steps(self.model, batch, self.loss, self.optimizer, self.steps)
                torch.cuda.synchronize()
            except torch.cuda.OutOfMemoryError:
                self._clear()
                return Trial(size, False, None, time.perf_counter() - started)
            peak = torch.cuda.max_memory_allocated()
        else:
            release_freed_memory()
            reset_peak_rss()
            _run_steps(self.model, batch, self.loss, self.optimizer, self.steps)
            peak = peak_rss() - self.baseline
        seconds = (time.perf_counter() - started) / self.steps
        self._clear()
        return Trial(size, peak <= self.budget, peak, seconds)

    def _clear(self) -> None:
        if self.optimizer is not None:
            self.optimizer.zero_grad(set_to_none=True)
        self.model.zero_grad(set_to_none=True)


def _budget(model: Any, memory_budget: int | str | None, headroom: float) -> tuple[int, str]:
    """The bytes a step may use, and a phrase naming where the bound comes from."""
    import psutil
    import torch

    device = _device(model)
    if memory_budget is not None:
        total = parse_bytes(memory_budget)
        where = f"the memory budget of {mebibytes(total)}"
    elif device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        total = free + torch.cuda.memory_allocated(device)
        where = f"{device}'s {mebibytes(total)} free"
    else:
        total = psutil.virtual_memory().available // 4
        where = f"a quarter of the memory available ({mebibytes(total)})"
    if total <= 0:
        raise InvalidInput(f"memory_budget must be more than 0 bytes, not {memory_budget!r}.")
    return int(total * (1 - headroom)), f"{where} less {headroom:.0%} headroom"


def _search(probe: Callable[[int], Trial], start: int, ceiling: int, multiple_of: int) -> int:
    """Double from ``start`` to the first size that does not fit, then bisect."""
    fit, too_big = 0, None
    size = start
    while size <= ceiling:
        if not probe(size).fits:
            too_big = size
            break
        fit = size
        if size == ceiling:
            return fit
        size = min(size * 2, ceiling)
    if too_big is None:
        return fit
    if fit == 0:
        return 0
    # bisect to within 5% (and the multiple) of the boundary: a trial costs a real step
    while too_big - fit > max(multiple_of, math.ceil(fit * 0.05)):
        middle = (fit + too_big) // 2 // multiple_of * multiple_of
        if middle <= fit:
            break
        if probe(middle).fits:
            fit = middle
        else:
            too_big = middle
    return fit


def find_batch_size(
    model: Any,
    dataset: Any,
    loss: LossFn,
    optimizer: Any = None,
    *,
    memory_budget: int | str | None = None,
    start: int = 8,
    max_size: int | None = None,
    multiple_of: int = 1,
    headroom: float = 0.1,
    steps: int = 1,
    collate_fn: Any = None,
    record: bool = True,
) -> BatchSizeResult:
    """The largest batch (per process) whose training step fits the device's memory.

    ``loss(model, batch)`` computes the loss of a batch as the training loop will (moving
    it to the device first where the loop does). ``memory_budget`` (bytes or a size such
    as ``"2GiB"``) bounds, on CUDA, the allocator's peak during a step, and on the CPU what
    a step adds to the process's resident memory over where it was when the search began;
    without it the bound is the GPU's free memory, or on the CPU a quarter of the memory
    available. ``headroom`` keeps that share of the bound free for what a trial does not
    see (evaluation, fragmentation). Under
    torchrun every process searches, and all take the smallest size found. In a Naiad job
    the choice and the trials are recorded on the run's params.
    """
    if start < 1 or (max_size is not None and max_size < start):
        raise InvalidInput(f"start must be at least 1 and at most max_size, not {start}.")
    if not 0 <= headroom < 1:
        raise InvalidInput(f"headroom is a share of the memory, from 0 to 1, not {headroom}.")
    budget, limit = _budget(model, memory_budget, headroom)
    ceiling = min(len(dataset), max_size or len(dataset))
    start = min(start, ceiling)
    trials: list[Trial] = []

    prober = _Prober(model, dataset, loss, optimizer, budget, steps)

    def probe(size: int) -> Trial:
        trials.append(prober(size, _first_batch(dataset, size, collate_fn)))
        return trials[-1]

    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict()) if optimizer is not None else None
    try:
        chosen = _search(probe, start, ceiling, multiple_of)
    finally:
        model.load_state_dict(saved_model)
        if optimizer is not None and saved_optimizer is not None:
            optimizer.load_state_dict(saved_optimizer)
    if chosen == 0:
        first = trials[0]
        raise InvalidInput(
            f"Even a batch of {first.batch_size} does not fit {limit}: its step used "
            f"{mebibytes(first.peak_bytes) if first.peak_bytes else 'more than there is'}. "
            "Give a larger memory_budget, a smaller start or a smaller model."
        )
    if chosen == ceiling and all(t.fits for t in trials):
        limit = f"the largest size allowed ({ceiling}; max_size or the data set's length)"
    chosen = max(multiple_of, chosen // multiple_of * multiple_of)
    chosen = _smallest_across_ranks(chosen)
    result = BatchSizeResult(chosen, limit, trials, dataset)
    if record:
        _record(result)
    return result


def _smallest_across_ranks(size: int) -> int:
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return size
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    value = torch.tensor([size], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return int(value.item())


def _record(result: BatchSizeResult) -> None:
    """The choice on the job's run (rank 0), and a line in the job's log."""
    from naiad.runtime.context import context

    ctx = context()
    if not ctx.is_main:
        return
    print(f"batch size finder: {result.describe()}", flush=True)
    run = ctx.tracking_run()
    if run is None:
        return
    run.log_params(
        {
            "batch_finder.batch_size": result.batch_size,
            "batch_finder.limit": result.limit[:250],
            "batch_finder.trials": "; ".join(t.describe() for t in result.trials)[:500],
        }
    )
