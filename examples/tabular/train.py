"""A dense network with dropout on CSV data, tracked and saved for the registry.

    naiad train train.py --source examples/tabular --hp epochs=40 \
        --input train=data/tabular/train --input validation=data/tabular/validation

Features are standardized with the training split's statistics, which are folded into
the saved model, so the endpoint and evaluation jobs take raw CSV rows.
"""

import torch
from torch import nn

from naiad import runtime
from naiad.runtime.datasets import load_labelled


class Standardize(nn.Module):
    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def network(features: int, classes: int, hidden: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(features, hidden),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Dropout(dropout),
        nn.Linear(hidden, classes),
    )


def main() -> None:
    ctx = runtime.context()
    hp = ctx.hyperparameters
    epochs, batch = hp.get_int("epochs", 40), hp.get_int("batch_size", 64)
    x, y = (torch.from_numpy(a) for a in load_labelled(ctx.channel("train")))
    x_val, y_val = (torch.from_numpy(a) for a in load_labelled(ctx.channel("validation")))
    torch.manual_seed(hp.get_int("seed", 0))
    scale = Standardize(x.mean(0), x.std(0).clamp_min(1e-6))
    net = network(
        x.shape[1], int(y.max()) + 1, hp.get_int("hidden", 64), hp.get_float("dropout", 0.2)
    )
    model = nn.Sequential(scale, net)
    optimizer = torch.optim.AdamW(
        net.parameters(),
        lr=hp.get_float("lr", 0.003),
        weight_decay=hp.get_float("weight_decay", 1e-4),
    )
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(y))
        for i in range(0, len(y), batch):
            idx = order[i : i + batch]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            logits = model(x_val)
            val_loss = nn.functional.cross_entropy(logits, y_val).item()
            val_accuracy = (logits.argmax(1) == y_val).float().mean().item()
        ctx.log_metrics(
            {
                "epoch": epoch,
                "train/loss": loss.item(),
                "val/loss": val_loss,
                "val/accuracy": val_accuracy,
            },
            step=epoch,
        )
        print(f"epoch {epoch + 1}/{epochs} val/loss {val_loss:.4f} val/accuracy {val_accuracy:.4f}")
    runtime.save_model(model.eval(), x[:1])


if __name__ == "__main__":
    main()
