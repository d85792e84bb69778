"""A deterministic trainer that checkpoints every epoch and can crash on cue.

With ``crash_at_step`` set, attempt 0 SIGKILLs itself at that step (after logging a
few steps past its last checkpoint); the retry resumes from the checkpoint.
"""

import os
import signal

import torch
from torch import nn

from naiad import runtime

ctx = runtime.context()
hp = ctx.hyperparameters
epochs, steps_per_epoch = hp.get_int("epochs"), hp.get_int("steps_per_epoch")
crash_at = hp.get_int("crash_at_step", -1)

torch.manual_seed(0)
torch.set_num_threads(1)
model = nn.Linear(8, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
start_epoch = 0
saved = runtime.checkpoints.latest()
if saved is not None:
    model.load_state_dict(saved["state"]["model"])
    optimizer.load_state_dict(saved["state"]["optimizer"])
    start_epoch = saved["state"]["epoch"] + 1
    print(f"resumed after epoch {saved['state']['epoch']}", flush=True)

for epoch in range(start_epoch, epochs):
    data = torch.Generator().manual_seed(epoch)  # the same batches whatever the attempt
    for i in range(steps_per_epoch):
        step = epoch * steps_per_epoch + i
        x = torch.randn(16, 8, generator=data)
        loss = ((model(x) - x.sum(1, keepdim=True)) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        ctx.log_metrics({"loss": loss.item()}, step=step)
        if step == crash_at and ctx.attempt == 0:
            ctx.tracking_run().flush()  # the points past the checkpoint reach the server
            os.kill(os.getpid(), signal.SIGKILL)
    runtime.checkpoints.save(
        {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch},
        step=epoch,
    )
torch.save(model.state_dict(), ctx.model_dir / "model.pt")
