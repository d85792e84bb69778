"""A training script written for SageMaker, run by Naiad unchanged.

It imports nothing from Naiad: it reads its hyperparameters from
``/opt/ml/input/config/hyperparameters.json``'s place (``SM_INPUT_DIR``), its data from
``SM_CHANNEL_TRAIN``, writes the model to ``SM_MODEL_DIR`` and, when it fails, the
reason to ``output/failure`` (which becomes the job's failure reason).

    .venv/bin/python examples/tabular/make_data.py data/tabular
    naiad train train.py --source examples/sagemaker-script --input train=data/tabular/train \
        --hp epochs=30 --hp lr=0.05

Any directory of CSV files with a header row and the label in the last column will do.
"""

import csv
import json
import os
import sys
import traceback

import torch
from torch import nn


def hyperparameters() -> dict:
    path = os.path.join(os.environ["SM_INPUT_DIR"], "config", "hyperparameters.json")
    with open(path) as f:
        return json.load(f)  # SageMaker passes every value as a string


def load(channel: str) -> tuple[torch.Tensor, torch.Tensor]:
    rows = []
    for name in sorted(os.listdir(channel)):
        if name.endswith(".csv"):
            with open(os.path.join(channel, name)) as f:
                reader = csv.reader(f)
                next(reader)  # header
                rows.extend([float(v) for v in row] for row in reader)
    if not rows:
        raise ValueError(f"no CSV rows in {channel}")
    data = torch.tensor(rows)
    return data[:, :-1], data[:, -1].long()


def main() -> None:
    hps = hyperparameters()
    epochs, lr = int(hps.get("epochs", 30)), float(hps.get("lr", 0.05))
    x, y = load(os.environ["SM_CHANNEL_TRAIN"])
    torch.manual_seed(0)
    model = nn.Linear(x.shape[1], int(y.max()) + 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    for epoch in range(epochs):
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        accuracy = (model(x).argmax(1) == y).float().mean().item()
        print(f"epoch={epoch} loss={loss.item():.4f} train_accuracy={accuracy:.4f}")
    torch.save(model.state_dict(), os.path.join(os.environ["SM_MODEL_DIR"], "model.pth"))
    with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "metrics.json"), "w") as f:
        json.dump({"train_accuracy": accuracy, "loss": loss.item()}, f)


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:
        output = os.path.dirname(os.environ.get("SM_OUTPUT_DATA_DIR", "output/data"))
        with open(os.path.join(output, "failure"), "w") as f:
            f.write(f"{type(exc).__name__}: {exc}")
        traceback.print_exc()
        sys.exit(1)
