"""The digits CNN as a SageMaker training script: it imports nothing from Naiad.

Run on one instance or several (``InstanceCount``): with more than one, every host
trains on its own shard of the data (``ShardedByS3Key``) and DDP averages the gradients,
so all hosts hold the same weights; the first host (``algo-1``) saves the model.
``run.py`` launches it with boto3; Naiad's own CLI runs it the same way:

    naiad train train.py --source examples/sagemaker-boto3 --input train=data/digits/train \
        --input validation=data/digits/validation --nodes 2 --hp epochs=5
"""

import argparse
import json
import os

import numpy as np
import torch
import torch.distributed as dist
from torch import nn


class DigitsCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )  # fmt: skip
        self.head = nn.Linear(32 * 2 * 2, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


def load(channel: str) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for name in sorted(os.listdir(channel)):
        if name.endswith(".npz"):
            data = np.load(os.path.join(channel, name))
            xs.append(data["x"])
            ys.append(data["y"])
    return torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    hosts = json.loads(os.environ["SM_HOSTS"])
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        dist.init_process_group("gloo")
    torch.manual_seed(0)
    model: nn.Module = DigitsCNN()
    if distributed:
        model = nn.parallel.DistributedDataParallel(model)
    x, y = load(os.environ["SM_CHANNEL_TRAIN"])
    x_val, y_val = load(os.environ["SM_CHANNEL_VALIDATION"])
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    print(f"host {os.environ['SM_CURRENT_HOST']} of {len(hosts)}: {len(y)} training images")
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(len(y))
        for start in range(0, len(y), args.batch_size):
            batch = order[start : start + args.batch_size]
            loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            accuracy = (model(x_val).argmax(1) == y_val).float().mean().item()
        print(f"epoch={epoch} loss={loss.item():.4f} val_accuracy={accuracy:.4f}")
    if os.environ["SM_CURRENT_HOST"] == hosts[0] and int(os.environ.get("LOCAL_RANK", "0")) == 0:
        network = model.module if distributed else model
        torch.jit.script(network).save(os.path.join(os.environ["SM_MODEL_DIR"], "model.pt"))
    if distributed:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
