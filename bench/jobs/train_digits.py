"""Train the digits CNN bare (``--bare``) or as a Naiad job that logs every step.

Bare: ``python bench/jobs/train_digits.py --bare [--steps N]`` ends by printing
``BENCH_RESULT {json}`` (samples/s and the clock readings). As a job
(``entrypoint="train_digits.py"``, hyperparameters ``steps``, ``threads``, ``acc_every``): logs
``loss`` every step and ``acc`` every ``acc_every`` steps to the job's run, then rank 0 prints
the same line to the job log.
Under torchrun each rank trains on its half of every global batch through DDP (gloo).
"""

import time

T_SCRIPT = time.time()  # before any import: where the script's own start-up begins

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

try:
    import digits_cnn  # in a job, the benchmark puts it beside this script
except ImportError:  # run from the repository: the helpers are one folder up
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import digits_cnn

T_TORCH = time.time()  # digits_cnn imports torch
MARK = "BENCH_RESULT "


def bare(args: argparse.Namespace) -> dict:
    digits_cnn.set_threads(args.threads)
    data = digits_cnn.load_data()
    t_ready = time.time()
    result = digits_cnn.train(data, args.steps, lambda figures, step: None, args.acc_every)
    times = {"t_script": T_SCRIPT, "t_torch": T_TORCH, "t_ready": t_ready}
    return {"mode": "bare", "world": 1} | times | result.as_dict()


def job() -> dict | None:
    from naiad import runtime
    from naiad.runtime.distributed import init_distributed

    ctx = runtime.context()
    hp = ctx.hyperparameters
    digits_cnn.set_threads(hp.get_int("threads", 1))
    t_imports = time.time()
    dist = init_distributed()
    data = digits_cnn.load_data()
    t_ready = time.time()
    model = digits_cnn.DigitsCNN()
    barrier = lambda: None  # noqa: E731
    if dist.world_size > 1:
        import torch.distributed
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(model)
        barrier = torch.distributed.barrier
    result = digits_cnn.train(
        data,
        hp.get_int("steps"),
        ctx.log_metrics,  # rank 0 logs; the others return at once
        hp.get_int("acc_every", 50),
        rank=dist.rank,
        world=dist.world_size,
        barrier=barrier,
        model=model,
    )
    if dist.world_size > 1:
        torch.distributed.destroy_process_group()
    if not ctx.is_main:
        return None
    return {
        "mode": "job",
        "world": dist.world_size,
        "t_script": T_SCRIPT,
        "t_torch": T_TORCH,
        "t_imports": t_imports,
        "t_ready": t_ready,
    } | result.as_dict()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bare", action="store_true", help="plain torch, no Naiad")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--acc_every", type=int, default=50)
    args, _ = parser.parse_known_args()  # a job also gets its hyperparameters as --key value
    out = bare(args) if args.bare else job()
    if out is not None:
        print(MARK + json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
