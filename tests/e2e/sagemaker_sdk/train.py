"""A SageMaker training script, as the SDK's PyTorch estimator uploads it."""

import argparse
import os

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=1)
args = parser.parse_args()
torch.manual_seed(0)
model = torch.nn.Linear(4, 2)
for epoch in range(args.epochs):
    print(f"epoch {epoch} loss={1.0 / (epoch + 1):.4f}")
torch.jit.script(model).save(os.path.join(os.environ["SM_MODEL_DIR"], "model.pt"))
