"""Train an MLP on the 8x8 digits with the data split over the ranks (DDP), or the data
and the model (FSDP), by one hyperparameter.

    naiad train train.py --source examples/sharded --procs 2 \
        --hp strategy=fsdp --hp epochs=4 --follow

or, outside Naiad, ``torchrun --nproc-per-node 2 train.py --strategy fsdp``.

Every rank draws the same permutation each epoch (DistributedSampler seeded with
``--seed``) and takes its own slice, so DDP and FSDP see the same batches and, from the
same seed, log the same losses. A restarted job resumes from the newest sharded
checkpoint (one per epoch, in the job's checkpoint directory). The model is saved
whole, on rank 0: ``model.pt`` (TorchScript) for endpoints and ``state_dict.pt`` for
``DigitsMLP().load_state_dict``.
"""

import argparse
import time
from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from naiad import runtime

Split = tuple[torch.Tensor, torch.Tensor]


class DigitsMLP(nn.Sequential):
    """Three linear layers: FSDP shards each one (its rows) over the ranks."""

    def __init__(self, hidden: int = 256) -> None:
        super().__init__(
            nn.Linear(64, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 10),
        )


def digits() -> tuple[Split, Split]:
    """scikit-learn's bundled digits (no download) as 64 features in [0, 1]; a fixed 20%
    held out for validation."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.data / 16.0, dtype=torch.float32)
    y = torch.tensor(data.target, dtype=torch.int64)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    held_out = len(y) // 5
    val, train = order[:held_out], order[held_out:]
    return (x[train], y[train]), (x[val], y[val])


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Loss and accuracy over all of ``x``; under FSDP every rank must call it."""
    model.eval()
    with torch.no_grad():
        logits = model(x).float()
        loss = nn.functional.cross_entropy(logits, y).item()
        accuracy = (logits.argmax(1) == y).float().mean().item()
    model.train()
    return loss, accuracy


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train an MLP on the digits, DDP or FSDP.")
    parser.add_argument("--strategy", choices=["ddp", "fsdp", "none"], default="fsdp")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=0.002)
    parser.add_argument("--batch-size", "--batch_size", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument(
        "--mixed-precision", "--mixed_precision", choices=["bf16", "fp16", "none"], default="none"
    )
    args, _ = parser.parse_known_args(argv)  # a job passes every hyperparameter as --name value
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse(argv)
    ctx = runtime.context()
    torch.manual_seed(args.seed)
    sharded = runtime.parallelize(
        DigitsMLP(args.hidden),
        args.strategy,
        mixed_precision=None if args.mixed_precision == "none" else args.mixed_precision,
    )
    rank, world, device = sharded.rank, sharded.world_size, sharded.device
    optimizer = torch.optim.Adam(sharded.module.parameters(), lr=args.lr)

    (x, y), (x_val, y_val) = digits()
    x_val, y_val = x_val.to(device), y_val.to(device)
    train = TensorDataset(x, y)
    sampler = DistributedSampler(train, world, rank, shuffle=True, seed=args.seed, drop_last=True)
    loader = DataLoader(train, batch_size=args.batch_size, sampler=sampler, drop_last=True)
    steps_per_epoch = len(loader)

    done = sharded.load_checkpoint(optimizer)  # the steps already trained, or None
    first_epoch = 0 if done is None else done // steps_per_epoch
    if done is not None and rank == 0:
        print(f"resuming from step {done} (epoch {first_epoch})", flush=True)
    held = sharded.log_param_bytes()
    if rank == 0:
        print(f"{sharded.strategy}: parameter bytes per rank {held}", flush=True)

    step_seconds: list[float] = []
    for epoch in range(first_epoch, args.epochs):
        sampler.set_epoch(epoch)
        started = time.perf_counter()
        for i, (xb, yb) in enumerate(loader):
            with sharded.autocast():
                loss = nn.functional.cross_entropy(sharded(xb.to(device)), yb.to(device))
            optimizer.zero_grad(set_to_none=True)
            sharded.backward(loss)
            sharded.step(optimizer)
            mean = loss.detach().float()
            if world > 1:  # the mean over ranks: the loss of the whole global batch
                dist.all_reduce(mean)
                mean /= world
            ctx.log_metrics({"train/loss": mean.item()}, step=epoch * steps_per_epoch + i)
        step_seconds.append((time.perf_counter() - started) / steps_per_epoch)
        val_loss, val_accuracy = evaluate(sharded.module, x_val, y_val)
        ctx.log_metrics(
            {
                "epoch": epoch,
                "val/loss": val_loss,
                "val/accuracy": val_accuracy,
                "train/step_seconds": step_seconds[-1],
            },
            step=epoch,
        )
        if rank == 0:
            print(
                f"epoch {epoch + 1}/{args.epochs}  loss {mean.item():.4f}  "
                f"val/loss {val_loss:.4f}  val/accuracy {val_accuracy:.4f}  "
                f"({1000 * step_seconds[-1]:.1f} ms/step)",
                flush=True,
            )
        sharded.save_checkpoint(optimizer, step=(epoch + 1) * steps_per_epoch)

    path = sharded.save_model(DigitsMLP(args.hidden), x[:1], classes=[str(d) for d in range(10)])
    if rank == 0:
        print(f"saved the model to {path}", flush=True)
    sharded.close()


if __name__ == "__main__":
    main()
