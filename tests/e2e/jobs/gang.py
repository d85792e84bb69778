"""A data-parallel trainer for gangs: one process per host, gloo, deterministic.

Every rank trains the same model on its half of each batch (DDP averages the
gradients), checkpoints every epoch (rank 0) and, at the end, prints a checksum of its
weights, which must be the same on every rank. ``step_s`` slows each step, so a test
can act mid-job; a retry resumes after the last checkpointed epoch.
"""

import os

import torch
import torch.distributed as dist
from torch import nn

from naiad import runtime

ctx = runtime.context()
hp = ctx.hyperparameters
epochs, steps = hp.get_int("epochs"), hp.get_int("steps_per_epoch")
step_s = hp.get_float("step_s", 0.0)
info = runtime.init_distributed()
print(
    f"rank {info.rank} of {info.world_size} on {os.environ['SM_CURRENT_HOST']} "
    f"pid {os.getpid()} hosts {os.environ['SM_HOSTS']}",
    flush=True,
)

torch.manual_seed(0)
torch.set_num_threads(1)
model = nn.parallel.DistributedDataParallel(nn.Linear(8, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
start = 0
saved = runtime.checkpoints.latest()
if saved is not None:
    model.module.load_state_dict(saved["state"]["model"])
    optimizer.load_state_dict(saved["state"]["optimizer"])
    start = saved["state"]["epoch"] + 1
    print(f"rank {info.rank} resumed after epoch {saved['state']['epoch']}", flush=True)

for epoch in range(start, epochs):
    data = torch.Generator().manual_seed(epoch)  # the same batches whatever the attempt
    for i in range(steps):
        x = torch.randn(2, 16, 8, generator=data)[info.rank]  # this rank's half
        loss = ((model(x) - x.sum(1, keepdim=True)) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        ctx.log_metrics({"loss": loss.item()}, step=epoch * steps + i)
        if step_s:
            torch.distributed.barrier()
            import time

            time.sleep(step_s)
    runtime.checkpoints.save(
        {"model": model.module.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch},
        step=epoch,
    )
    print(f"rank {info.rank} checkpointed epoch {epoch}", flush=True)

checksum = sum(float(p.detach().double().sum()) for p in model.parameters())
print(f"rank {info.rank} weights {checksum:.12f}", flush=True)
if info.rank == 0:
    torch.save(model.module.state_dict(), ctx.model_dir / "model.pt")
dist.barrier()  # no rank tears gloo down while its peer still talks to it
dist.destroy_process_group()
