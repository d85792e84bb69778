"""An elastic trainer: DDP over however many workers this round has, a fixed global
batch kept by DynamicBatch across resizes, a checkpoint every few steps to resume from.

Logs ``loss`` and ``workers`` (this round's world size) at every optimiser step; rank 0
writes ``model/result.json`` with the steps it ended on.
"""

import json
import time

import torch
import torch.distributed as dist
from torch import nn

from naiad import runtime
from naiad.runtime.batching import DynamicBatch

ctx = runtime.context()
hp = ctx.hyperparameters
steps, every = hp.get_int("steps"), hp.get_int("checkpoint_every", 5)
pause = hp.get_float("step_s", 0.1)

info = runtime.init_distributed()
torch.manual_seed(0)
torch.set_num_threads(1)
x = torch.randn(4096, 8, generator=torch.Generator().manual_seed(1))
data = torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True))
model = nn.Linear(8, 1)
ddp = nn.parallel.DistributedDataParallel(model) if info.world_size > 1 else model
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
dyn = DynamicBatch(data, optimizer, batch_size=32, model=ddp)
saved = runtime.checkpoints.latest()
if saved is not None:
    model.load_state_dict(saved["state"]["model"])
    optimizer.load_state_dict(saved["state"]["optimizer"])
    dyn.load_state_dict(saved["state"]["batching"])
    print(f"resumed at step {saved['step']} with {info.world_size} workers", flush=True)

epoch = 0
while dyn.global_step < steps:
    for xb, yb in dyn.batches(epoch):
        loss = dyn.backward(lambda b: ((ddp(b[0]) - b[1]) ** 2).mean(), (xb, yb))
        dyn.step()
        ctx.log_metrics({"loss": float(loss), "workers": info.world_size}, step=dyn.global_step)
        if dyn.global_step % every == 0:
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
            runtime.checkpoints.save({**state, "batching": dyn.state_dict()}, dyn.global_step)
        time.sleep(pause)
        if dyn.global_step >= steps:
            break
    epoch += 1

if ctx.is_main:
    result = {"steps": dyn.global_step, "workers": info.world_size, "batch": dyn.batch_size}
    (ctx.model_dir / "result.json").write_text(json.dumps(result))
if info.world_size > 1:
    dist.barrier()  # no rank tears gloo down while a peer still talks to it
    dist.destroy_process_group()
