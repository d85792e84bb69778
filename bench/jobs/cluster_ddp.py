"""The 2-node DDP job of the cluster benchmark: one loop, run by Naiad or by Ray Train.

As a Naiad job (``entrypoint="cluster_ddp.py"``, ``nodes=2``) the script joins the process
group Naiad's launch set up, saves with ``runtime.checkpoints`` and resumes from
``runtime.checkpoints.latest()``; it prints its events to the job log. Under Ray Train,
``ray_train_loop`` is the ``train_loop_per_worker`` of a ``TorchTrainer`` (Ray Train set
the process group up before it runs): it saves with ``ray.train.report(checkpoint=...)``,
resumes from ``ray.train.get_checkpoint()`` and appends its events to a file.

The loop is the digits CNN (``digits_cnn.py``), per-rank batch 64, gloo, seed 0: ``warmup``
steps, then ``timed`` steps on rank 0's clock (global samples/s), a checkpoint, then
``hold`` more steps. A first attempt paces the ``hold`` steps (``hold_step_s`` each) so
that the benchmark can kill a node mid-training after the checkpoint; a resumed attempt
runs them at full speed. Every batch depends only on the step, so a resumed run ends with
the same weights as one that was never interrupted, whichever side ran it.

Each event is a line ``CLUSTER_EVENT {json}`` with the wall clock (``time.time()``) and the
start times of this process and its parents (which process started when, for the profile).
"""

import time

T_SCRIPT = time.time()  # before any import: where a Naiad job's script starts

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

try:
    import digits_cnn  # in a job, the benchmark puts it beside this script
except ImportError:  # imported from the repository: the helpers are one folder up
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import digits_cnn

MARK = "CLUSTER_EVENT "
Emit = Callable[..., None]
Save = Callable[[dict[str, Any], int], None]


def ancestry(limit: int = 4) -> list[tuple[str, float]]:
    """(name, start time) of this process and its parents up to the Ray node's raylet."""
    try:
        import psutil

        chain: list[tuple[str, float]] = []
        proc = psutil.Process()
        while proc is not None and len(chain) < limit:
            name = " ".join(proc.cmdline()[:3])[:80] or proc.name()
            chain.append((name, proc.create_time()))
            if "raylet" in name:
                break
            proc = proc.parent()
        return chain
    except Exception:  # a profile, not a result: never fail the job for it
        return []


def train(
    rank: int, world: int, hp: dict[str, Any], resume: dict[str, Any] | None, save: Save, emit: Emit
) -> None:
    """The loop both sides run; ``resume`` is the saved state of an earlier attempt."""
    import torch
    import torch.distributed as dist
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel

    digits_cnn.set_threads(int(hp.get("threads", 1)))
    warmup, timed, hold = int(hp["warmup"]), int(hp["timed"]), int(hp["hold"])
    checkpoint_at, total = warmup + timed, warmup + timed + hold
    data = digits_cnn.load_data()
    t_data = time.time()
    torch.manual_seed(digits_cnn.SEED)
    model = digits_cnn.DigitsCNN()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    start = 0
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        start = int(resume["step"])
    ddp = DistributedDataParallel(model)
    loss_fn = nn.CrossEntropyLoss()
    indices = digits_cnn.batches(len(data.y_train), digits_cnn.BATCH, rank, world, digits_cnn.SEED)
    for _ in range(start):  # the batches the earlier attempt trained on
        next(indices)
    t_model = time.time()
    emit("ready", t_data=t_data, t_model=t_model, resumed_from=start)
    paced = resume is None
    clock = cpu = 0.0
    for step in range(start, total):
        if step == warmup and start == 0:
            dist.barrier()
            clock, cpu = time.perf_counter(), time.thread_time()
        idx = next(indices)
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(ddp(data.x_train[idx]), data.y_train[idx])
        loss.backward()
        optimizer.step()
        loss_value = loss.item()
        if step == start:
            emit("first_step", step=step, resumed=start > 0)
        if step + 1 == checkpoint_at and start == 0:
            dist.barrier()
            seconds, cpu = time.perf_counter() - clock, time.thread_time() - cpu
            samples = timed * digits_cnn.BATCH * world
            emit(
                "steady",
                steps=timed,
                seconds=seconds,
                samples_per_s=samples / seconds,
                thread_cpu_s=cpu,  # this training thread's CPU: the rest of a step is waiting
                nice=os.nice(0),  # Ray starts its workers niced; their children inherit it
            )
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
            save(state | {"step": step + 1}, step + 1)
            emit("checkpointed", step=step + 1)
        elif step >= checkpoint_at and paced:
            time.sleep(float(hp["hold_step_s"]))  # a window for the kill, first attempt only
    checksum = sum(float(p.detach().double().sum()) for p in model.parameters())
    emit("done", loss=loss_value, checksum=round(checksum, 10))
    dist.barrier()  # no rank tears gloo down while its peer still talks to it


def event(rank: int, write: Callable[[str], None]) -> Emit:
    """An ``emit(kind, **fields)`` that stamps the rank, the time and the process chain."""

    def emit(kind: str, **fields: Any) -> None:
        record = {"kind": kind, "rank": rank, "t": time.time(), "pid": os.getpid()} | fields
        if kind in ("start", "first_step"):
            record["procs"] = ancestry()
        write(MARK + json.dumps(record))

    return emit


# -- Naiad: a script in the job's working directory ------------------------------------


def naiad_main() -> None:
    t_torch = time.time()  # digits_cnn imported torch
    from naiad import runtime

    ctx = runtime.context()
    info = runtime.init_distributed()
    emit = event(info.rank, lambda line: print(line, flush=True))
    emit("start", t_entry=T_SCRIPT, t_torch=t_torch, t_group=time.time())
    saved = runtime.checkpoints.latest()
    given = ctx.hyperparameters
    hp: dict[str, Any] = {k: given.get_int(k) for k in ("warmup", "timed", "hold")}
    hp |= {"hold_step_s": given.get_float("hold_step_s"), "threads": given.get_int("threads", 1)}
    train(info.rank, info.world_size, hp, saved and saved["state"], runtime.checkpoints.save, emit)

    import torch.distributed as dist

    dist.destroy_process_group()


# -- Ray Train: the train_loop_per_worker of a TorchTrainer ----------------------------


def ray_train_loop(config: dict[str, Any]) -> None:
    t_entry = time.time()
    import tempfile

    import ray
    import ray.train
    import torch

    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    events = Path(config["events"])

    def write(line: str) -> None:
        with open(events, "a") as f:  # one short append per line: whole lines, any rank
            f.write(line + "\n")

    emit = event(rank, write)
    node = ray.get_runtime_context().get_node_id()
    emit("start", t_entry=t_entry, node=node)  # torch and the process group: before us
    resume = None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            resume = torch.load(Path(folder) / "state.pt", weights_only=True)

    def save(state: dict[str, Any], step: int) -> None:
        if rank != 0:
            ray.train.report({"step": step})  # every rank reports, rank 0 the checkpoint
            return
        with tempfile.TemporaryDirectory() as folder:
            torch.save(state, Path(folder) / "state.pt")
            checkpoint = ray.train.Checkpoint.from_directory(folder)
            ray.train.report({"step": step}, checkpoint=checkpoint)

    train(rank, world, config, resume, save, emit)


if __name__ == "__main__":
    naiad_main()
