"""The digits CNN, its data and its training loop, shared by the bare run and the Naiad job.

Plain torch on scikit-learn's bundled 8x8 ``load_digits``: nothing is downloaded. The loop
is the same function in both runs; only what it does with each step's figures differs
(nothing, or ``ctx.log_metrics``), so the throughput ratio measures Naiad's cost alone.
"""

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

SEED = 0
BATCH = 64
WARMUP_STEPS = 10  # left out of the clock: the first steps pay for lazy allocations

LogFn = Callable[[dict[str, float], int], None]


def set_threads(threads: int) -> None:
    """The same thread count in every run (a job's default OMP_NUM_THREADS is cores/procs)."""
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(threads)


class DigitsCNN(nn.Module):
    """conv 1->16 3x3, ReLU, conv 16->32 3x3, ReLU, flatten, linear 512 -> 10."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 3),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@dataclass(frozen=True)
class Data:
    x_train: torch.Tensor  # (n, 1, 8, 8) float32 in [0, 1]
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def load_data(test_fraction: float = 0.2) -> Data:
    """The 1,797 digits, shuffled with a fixed seed, split into train and test."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(SEED))
    x, y = x[order], y[order]
    n_test = int(len(y) * test_fraction)
    return Data(x[n_test:], y[n_test:], x[:n_test], y[:n_test])


def batches(n: int, batch: int, rank: int, world: int, seed: int) -> Iterator[torch.Tensor]:
    """Index tensors, forever: each epoch a fresh permutation (the same on every rank),
    cut into global batches of ``batch * world``, of which this rank takes its slice."""
    generator = torch.Generator().manual_seed(seed)
    global_batch = batch * world
    while True:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n - global_batch + 1, global_batch):
            yield order[start + rank * batch : start + (rank + 1) * batch]


@dataclass(frozen=True)
class Result:
    steps: int  # steps on the clock (after the warm-up)
    seconds: float
    samples_per_s: float  # this rank's samples x world size: the global rate
    cpu_seconds: float  # CPU time of this whole process (every thread) over the same steps
    samples_per_cpu_s: float  # this rank's samples per CPU-second: blind to other processes
    thread_cpu_seconds: float  # CPU time of the training thread alone
    log_seconds: float  # wall time spent inside ``log`` calls on the clock
    final_loss: float
    test_acc: float
    built_at: float  # time.time() once the model and optimizer exist (the first optimizer
    # imports torch._dynamo: seconds, once per process)
    first_step_at: float  # time.time() when the first step's ``log`` call returned
    first_log_seconds: float  # how long that first ``log`` call took (a job's starts its SDK)

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in vars(self).items()}


def train(
    data: Data,
    steps: int,
    log: LogFn,
    acc_every: int = 50,
    rank: int = 0,
    world: int = 1,
    barrier: Callable[[], None] = lambda: None,
    model: nn.Module | None = None,
) -> Result:
    """``steps`` SGD steps of ``BATCH`` samples per rank; ``log(figures, step)`` every step.

    Every step computes the loss as a float (and the batch accuracy every ``acc_every``
    steps) whether or not ``log`` keeps it, so a bare run does the same work as a job.
    The clocks (wall and this process's CPU time) run from the start of step
    ``WARMUP_STEPS`` to the end of the last step.
    """
    torch.manual_seed(SEED)
    model = model if model is not None else DigitsCNN()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    built_at = time.time()
    indices = batches(len(data.y_train), BATCH, rank, world, SEED)
    model.train()
    started = cpu_started = thread_started = log_seconds = 0.0
    first_step_at = first_log_seconds = 0.0
    loss_value = float("nan")
    for step in range(steps + WARMUP_STEPS):
        if step == WARMUP_STEPS:
            barrier()
            started = time.perf_counter()
            cpu_started = time.process_time()
            thread_started = time.thread_time()
            log_seconds = 0.0
        idx = next(indices)
        x, y = data.x_train[idx], data.y_train[idx]
        optimizer.zero_grad(set_to_none=True)
        logits = model(x)
        loss = loss_fn(logits, y)
        loss.backward()
        optimizer.step()
        loss_value = loss.item()
        figures = {"loss": loss_value}
        if step % acc_every == 0:
            figures["acc"] = (logits.argmax(1) == y).float().mean().item()
        before_log = time.perf_counter()
        log(figures, step)
        if step == 0:
            first_step_at = time.time()
            first_log_seconds = time.perf_counter() - before_log
        log_seconds += time.perf_counter() - before_log
    barrier()
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    thread_cpu_seconds = time.thread_time() - thread_started
    model.eval()
    with torch.no_grad():
        test_acc = (model(data.x_test).argmax(1) == data.y_test).float().mean().item()
    return Result(
        steps=steps,
        seconds=seconds,
        samples_per_s=steps * BATCH * world / seconds,
        cpu_seconds=cpu_seconds,
        samples_per_cpu_s=steps * BATCH / cpu_seconds,
        thread_cpu_seconds=thread_cpu_seconds,
        log_seconds=log_seconds,
        final_loss=loss_value,
        test_acc=test_acc,
        built_at=built_at,
        first_step_at=first_step_at,
        first_log_seconds=first_log_seconds,
    )
