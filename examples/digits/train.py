"""Train a small CNN on the 8x8 digits with naiad.runtime: DDP, checkpoints, live metrics.

    naiad train train.py --source examples/digits --procs 2 --hp epochs=12 \
        --input train=data/digits/train --input validation=data/digits/validation --follow

Every rank reads the same permutation each epoch and takes its own slice, so any number
of processes sees the data in the same order; a restarted job resumes from its last
epoch's checkpoint and ends with the same weights as one that never failed.
"""

import math
import time

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from naiad import runtime
from naiad.runtime.datasets import load_labelled


class DigitsCNN(nn.Module):
    def __init__(self, dropout: float = 0.1) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # 8x8 -> 4x4
        )
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(64 * 4 * 4, 128),
            nn.ReLU(),
            nn.Linear(128, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        logits = model(x)
        loss = nn.functional.cross_entropy(logits, y).item()
        accuracy = (logits.argmax(1) == y).float().mean().item()
    model.train()
    return loss, accuracy


def main() -> None:
    ctx = runtime.context()
    hp = ctx.hyperparameters
    epochs, batch = hp.get_int("epochs", 12), hp.get_int("batch_size", 32)
    lr, seed = hp.get_float("lr", 0.002), hp.get_int("seed", 0)
    dist_info = runtime.init_distributed()
    rank, world = dist_info.rank, dist_info.world_size

    x, y = (torch.from_numpy(a) for a in load_labelled(ctx.channel("train")))
    x_val, y_val = (torch.from_numpy(a) for a in load_labelled(ctx.channel("validation")))
    torch.manual_seed(seed)
    model = DigitsCNN(hp.get_float("dropout", 0.1))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    first_epoch = 0
    checkpoint = runtime.checkpoints.latest()
    if checkpoint is not None:
        model.load_state_dict(checkpoint["state"]["model"])
        optimizer.load_state_dict(checkpoint["state"]["optimizer"])
        first_epoch = checkpoint["step"] + 1
        if ctx.is_main:
            print(f"resuming after epoch {checkpoint['step']}")
    trained = DistributedDataParallel(model) if world > 1 else model
    steps_per_epoch = len(y) // (batch * world)

    for epoch in range(first_epoch, epochs):
        started = time.perf_counter()
        for group in optimizer.param_groups:  # cosine decay: a function of the epoch alone
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * epoch / epochs))
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed + epoch))
        for i in range(steps_per_epoch):
            start = (i * world + rank) * batch
            idx = order[start : start + batch]
            loss = nn.functional.cross_entropy(trained(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            ctx.log_metrics({"train/loss": loss.item()}, step=epoch * steps_per_epoch + i)
        val_loss, val_accuracy = evaluate(model, x_val, y_val)
        figures = {"epoch": epoch, "val/loss": val_loss, "val/accuracy": val_accuracy}
        ctx.log_metrics(figures, step=epoch)
        if ctx.is_main:
            print(
                f"epoch {epoch + 1}/{epochs}  loss {loss.item():.4f}  val/loss {val_loss:.4f}  "
                f"val/accuracy {val_accuracy:.4f}  ({time.perf_counter() - started:.1f}s)",
                flush=True,
            )
        runtime.checkpoints.save(
            {"model": model.state_dict(), "optimizer": optimizer.state_dict()}, step=epoch
        )

    if ctx.is_main:
        path = runtime.save_model(model.eval(), x[:1], classes=[str(d) for d in range(10)])
        print(f"saved the model to {path}")
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
