"""Dynamic batch sizes against the same loop with its fixed batch, and the batch-size finder
against the largest batch that actually fits.

    make bench-batching            # or: python bench/batching.py --json bench/results/batching.json

Two workloads, the examples' own models and data (nothing is downloaded):
- digits: ``examples/digits``' CNN on scikit-learn's 8x8 digits (1,438 rows to train on,
  359 to validate), Adam at lr 0.002, batch 32, 12 epochs;
- tabular: ``examples/tabular``' network on its generated CSV (2,100 rows, 450 to
  validate), AdamW at lr 0.003, batch 64, 40 epochs.

1. Time to a target. Each workload trains ``--seeds`` times with its fixed batch and as
   many times with an adaptive one, the two alternating, the same epochs each: the same
   loop (``DynamicBatch``, so the data order is the same for a seed), with ``adaptive``
   off and on, from the same batch and learning rate (the ``sqrt`` rule, as for Adam; at
   most 16 times the batch, and no more than the finder allows). The validation accuracy
   is read after every epoch, off the clock. A run's final accuracy is the mean of its
   last 5 epochs' (on 359 or 450 validation rows, one epoch's accuracy moves by a point
   or more from the next; the last epoch's alone is kept in the JSON record). The target
   is the fixed runs' median final accuracy less 0.5 points. The figures are medians over
   the seeds: the training seconds until the target is first reached, and the final
   accuracy. The adaptive run must reach
   the target sooner and lose at most 0.5 points.
2. The finder. ``find_batch_size`` with a memory budget, at the start of a fresh process
   as a job's script would run it, then the truth: each size on a
   grid from half to twice the choice trains 3 steps in a fresh process, and what its
   peak resident memory (``VmHWM``) rose to over its resident memory before the first
   step is what the size really needs, gradients, optimiser state and lazy set-up
   included. The choice must be at
   least half the largest size that fits the budget, and must itself fit.
"""

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from _common import Row, Sections, say
from digits_cnn import load_data
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from naiad.runtime import batching
from naiad.runtime.batching.finder import (
    current_rss,
    peak_rss,
    release_freed_memory,
    reset_peak_rss,
)

ROOT = Path(__file__).resolve().parents[1]
BUDGETS = {"digits": "96MiB", "tabular": "8MiB"}
LAST_EPOCHS = 5  # "final accuracy": their mean, as one epoch's moves by a point or more


def _example(path: str, name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, ROOT / path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Workload:
    name: str
    train: TensorDataset
    x_val: torch.Tensor
    y_val: torch.Tensor
    make_model: Callable[[], nn.Module]
    make_optimizer: Callable[[nn.Module], torch.optim.Optimizer]
    batch: int
    epochs: int


def digits() -> Workload:
    cnn = _example("examples/digits/train.py", "digits_train")
    data = load_data(test_fraction=0.2)
    return Workload(
        "digits",
        TensorDataset(data.x_train, data.y_train),
        data.x_test,
        data.y_test,
        lambda: cnn.DigitsCNN(0.1),
        lambda m: torch.optim.Adam(m.parameters(), lr=0.002),
        batch=32,
        epochs=12,
    )


def tabular(work: Path) -> Workload:
    from naiad.runtime.datasets import load_labelled

    make = _example("examples/tabular/make_data.py", "tabular_make")
    net = _example("examples/tabular/train.py", "tabular_train")
    paths = make.make(work / "tabular")
    x, y = (torch.from_numpy(a) for a in load_labelled(paths["train"]))
    x_val, y_val = (torch.from_numpy(a) for a in load_labelled(paths["validation"]))
    scale = net.Standardize(x.mean(0), x.std(0).clamp_min(1e-6))

    def model() -> nn.Module:
        return nn.Sequential(scale, net.network(x.shape[1], int(y.max()) + 1, 64, 0.2))

    return Workload(
        "tabular",
        TensorDataset(x, y),
        x_val,
        y_val,
        model,
        lambda m: torch.optim.AdamW(m.parameters(), lr=0.003, weight_decay=1e-4),
        batch=64,
        epochs=40,
    )


def accuracy(model: nn.Module, w: Workload) -> float:
    model.eval()
    with torch.no_grad():
        value = (model(w.x_val).argmax(1) == w.y_val).float().mean().item()
    model.train()
    return value


def loss_of(model: nn.Module, batch: Any) -> torch.Tensor:
    return nn.functional.cross_entropy(model(batch[0]), batch[1])


def train(w: Workload, adaptive: bool, seed: int, max_batch: int) -> dict[str, Any]:
    """One run: per epoch, the training seconds so far and the validation accuracy."""
    torch.manual_seed(seed)
    model = w.make_model()
    optimizer = w.make_optimizer(model)
    trace: list[tuple[float, float]] = []
    clock = 0.0
    # the same loop either way, so the data order is the same: only the adaptivity differs
    dyn = batching.DynamicBatch(
        w.train, optimizer, batch_size=w.batch, adaptive=adaptive, max_batch=max_batch, seed=seed
    )
    for epoch in range(w.epochs):
        started = time.perf_counter()
        for batch in dyn.batches(epoch):
            dyn.backward(lambda b: loss_of(model, b), batch)
            dyn.step()
        clock += time.perf_counter() - started
        trace.append((clock, accuracy(model, w)))
    return {
        "trace": trace,
        "final": statistics.mean(acc for _, acc in trace[-LAST_EPOCHS:]),
        "last_epoch": trace[-1][1],
        "final_batch": dyn.batch_size,
        "changes": dyn.changes,
    }


def time_to(trace: list[tuple[float, float]], target: float) -> float | None:
    return next((seconds for seconds, acc in trace if acc >= target), None)


def compare(w: Workload, seeds: int, max_batch: int) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"fixed": [], "adaptive": []}
    for seed in range(seeds):
        for kind in ("fixed", "adaptive"):
            runs[kind].append(train(w, kind == "adaptive", seed, max_batch))
            last = runs[kind][-1]
            say(
                f"{w.name} {kind} seed {seed}: final {last['final']:.4f} in "
                f"{last['trace'][-1][0]:.1f}s, batch {last['final_batch']}"
            )
    target = statistics.median(r["final"] for r in runs["fixed"]) - 0.005
    summary: dict[str, Any] = {"target": target, "max_batch": max_batch, "runs": runs}
    for kind, done in runs.items():
        reached = [time_to(r["trace"], target) for r in done]
        summary[kind] = {
            "seconds_to_target": statistics.median(
                [s if s is not None else float("inf") for s in reached]
            ),
            "reached": sum(s is not None for s in reached),
            "final": statistics.median(r["final"] for r in done),
            "seconds": statistics.median(r["trace"][-1][0] for r in done),
        }
    return summary


# the finder against the truth


def probe(w: Workload, size: int) -> dict[str, int]:
    """In this fresh process: how much ``size`` really adds to the resident memory, its
    first steps included (gradients, optimiser state and lazy set-up appear then)."""
    torch.manual_seed(0)
    model = w.make_model()
    optimizer = w.make_optimizer(model)
    batch = next(iter(DataLoader(w.train, batch_size=size)))
    release_freed_memory()
    reset_peak_rss()
    settled = current_rss()
    for _ in range(3):
        loss_of(model, batch).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return {"size": size, "needs": max(0, peak_rss() - settled)}


def find(w: Workload, budget: str) -> dict[str, Any]:
    """The finder at the start of a fresh process, as a job's script runs it."""
    torch.manual_seed(0)
    model = w.make_model()
    optimizer = w.make_optimizer(model)
    started = time.perf_counter()
    found = batching.find_batch_size(
        model, w.train, loss_of, optimizer, memory_budget=budget, record=False
    )
    return {
        "chosen": found.batch_size,
        "seconds": time.perf_counter() - started,
        "trials": [t.__dict__ for t in found.trials],
    }


def _in_fresh_process(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def finder_against_truth(w: Workload, budget: str) -> dict[str, Any]:
    found = _in_fresh_process("--find", w.name)
    limit = batching.finder.parse_bytes(budget)
    chosen_size = found["chosen"]
    grid = sorted({min(len(w.train), max(1, chosen_size * k // 8)) for k in range(4, 17)})
    truth = [_in_fresh_process("--probe", w.name, str(size)) for size in grid]
    fitting = [t["size"] for t in truth if t["needs"] <= limit]
    chosen = next(t for t in truth if t["size"] == chosen_size)
    return {
        "budget_bytes": limit,
        "chosen": chosen_size,
        "chosen_needs": chosen["needs"],
        "largest_fitting": max(fitting) if fitting else None,
        "grid_top_fits": bool(fitting) and max(fitting) == grid[-1],
        "finder_seconds": found["seconds"],
        "trials": found["trials"],
        "truth": truth,
    }


def rows_for(name: str, result: dict[str, Any], finder: dict[str, Any] | None) -> list[Row]:
    fixed, adaptive = result["fixed"], result["adaptive"]
    rows = [
        Row(
            name,
            f"seconds to {result['target']:.1%} validation accuracy",
            "s",
            adaptive["seconds_to_target"],
            fixed["seconds_to_target"],
            higher_is_better=False,
            target="sooner than fixed",
            met=adaptive["seconds_to_target"] < fixed["seconds_to_target"],
            note=f"reached in {adaptive['reached']} and {fixed['reached']} runs",
        ),
        Row(
            name,
            f"final validation accuracy (mean of the last {LAST_EPOCHS} epochs)",
            "%",
            100 * adaptive["final"],
            100 * fixed["final"],
            higher_is_better=True,
            target=">= fixed - 0.5",
            met=adaptive["final"] >= fixed["final"] - 0.005,
        ),
    ]
    if finder is not None:
        largest = finder["largest_fitting"]
        rows.append(
            Row(
                name,
                f"finder's batch vs the largest that fits {finder['budget_bytes'] >> 20} MiB",
                "rows",
                finder["chosen"],
                largest,
                higher_is_better=True,
                target=">= 1/2 of it, and fits",
                met=largest is not None
                and finder["chosen"] * 2 >= largest
                and finder["chosen_needs"] <= finder["budget_bytes"],
                note=f"the choice needs {finder['chosen_needs'] / 2**20:.1f} MiB; "
                f"search {finder['finder_seconds']:.1f}s",
            )
        )
    return rows


@dataclass(frozen=True)
class Sizes:
    seeds: int


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--probe", nargs=2, metavar=("WORKLOAD", "SIZE"), help=argparse.SUPPRESS)
    parser.add_argument("--find", metavar="WORKLOAD", help=argparse.SUPPRESS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="naiad-batching-") as work:
        workloads = {"digits": digits(), "tabular": tabular(Path(work))}
        if args.probe:
            print(json.dumps(probe(workloads[args.probe[0]], int(args.probe[1]))))
            return
        if args.find:
            print(json.dumps(find(workloads[args.find], BUDGETS[args.find])))
            return
        sections = Sections()
        rows: list[Row] = []
        for name, w in workloads.items():
            finder = sections.measure(f"{name} finder", finder_against_truth, w, BUDGETS[name])
            allowed = finder["chosen"] if finder else 16 * w.batch
            result = sections.measure(
                f"{name} adaptive", compare, w, args.seeds, min(16 * w.batch, allowed)
            )
            if result is not None:
                rows += rows_for(name, result, finder)
    sections.report(rows, "fixed batch / truth", args.json, Sizes(args.seeds), _versions)


def _versions() -> dict[str, str]:
    return {"torch": torch.__version__}


if __name__ == "__main__":
    main()
