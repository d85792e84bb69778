"""The quickstart: a tracked training run on the bundled digits data, end to end.

Starts the embedded server if none is running, trains a small network on
scikit-learn's 8x8 digits while logging every step, and says where to look next.
"""

import time

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

import naiad
from naiad.sdk.config import naiad_home
from naiad.sdk.local_server import ensure_server

console = Console()


def digits() -> tuple[torch.Tensor, ...]:
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x.astype(np.float32) / 16.0, y, test_size=0.2, random_state=0, stratify=y
    )
    return (
        torch.from_numpy(x_train),
        torch.from_numpy(y_train),
        torch.from_numpy(x_test),
        torch.from_numpy(y_test),
    )


def main(epochs: int = 30, lr: float = 3e-3, batch_size: int = 64) -> None:
    url = ensure_server()
    console.print(f"[bold]Naiad[/] server at {url} (home: {naiad_home()})")
    torch.manual_seed(0)
    torch.set_num_threads(1)  # a model this small only loses time to intra-op threading
    x_train, y_train, x_test, y_test = digits()
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.1), nn.Linear(128, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    params = {"epochs": epochs, "lr": lr, "batch_size": batch_size, "hidden": 128}
    steps_per_epoch = (len(x_train) + batch_size - 1) // batch_size
    with naiad.start_run(experiment="quickstart", params=params, system_metrics=True) as run:
        progress = Progress(
            TextColumn("[bold]training[/]"),
            BarColumn(),
            TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"),
            TextColumn("loss {task.fields[loss]:.4f} acc {task.fields[acc]:.3f}"),
            TimeRemainingColumn(),
            console=console,
        )
        with progress:
            task = progress.add_task("", total=epochs, epoch=0, epochs=epochs, loss=0.0, acc=0.0)
            step = 0
            for epoch in range(epochs):
                model.train()
                order = torch.randperm(len(x_train))
                for i in range(steps_per_epoch):
                    idx = order[i * batch_size : (i + 1) * batch_size]
                    loss = nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    run.log_metrics({"train/loss": loss.item()}, step=step)
                    step += 1
                model.eval()
                with torch.no_grad():
                    logits = model(x_test)
                    val_loss = nn.functional.cross_entropy(logits, y_test).item()
                    acc = (logits.argmax(1) == y_test).float().mean().item()
                run.log_metrics({"val/loss": val_loss, "val/acc": acc, "epoch": epoch}, step=step)
                progress.update(task, advance=1, epoch=epoch + 1, loss=val_loss, acc=acc)
        started = time.perf_counter()
        run.flush()
        flushed_ms = (time.perf_counter() - started) * 1000
    client = naiad.Client()
    stored = client.runs.get(run.id)
    table = Table(title=f"run {stored.name} ({stored.status})")
    for column in ("metric", "last", "min", "max", "points"):
        table.add_column(column)
    for key, m in sorted(stored.metrics.items()):
        if not key.startswith("system/"):
            table.add_row(key, f"{m.value:.4g}", f"{m.min:.4g}", f"{m.max:.4g}", str(m.count))
    console.print(table)
    console.print(f"Final flush took {flushed_ms:.0f} ms; every point is on the server.")
    console.print("\n[bold]Next[/] (after `source .venv/bin/activate`):")
    console.print("  naiad runs ls --experiment quickstart")
    console.print(f"  naiad runs show {run.id}")
    console.print(f"  naiad runs export {run.id} --format csv")
    console.print(f"  API docs: {url}/api/v1/docs (token in {naiad_home() / 'admin_token'})")


if __name__ == "__main__":
    main()
