"""Batch sizes that fit and adapt (naiad.runtime.batching): the finder, the warm-up and its
learning rates, the noise-scale estimate, the goodput rule, resumes, and torchrun's ranks."""

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from naiad.core.errors import InvalidInput
from naiad.runtime import batching
from naiad.runtime.batching.finder import parse_bytes
from naiad.runtime.batching.noise import StepTimes, choose
from naiad.runtime.batching.schedule import candidates


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 2048), nn.ReLU(), nn.Linear(2048, 10))


def data(rows: int = 4096) -> TensorDataset:
    """Rows whose label a linear map of them decides: a gradient with signal in it."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(rows, 64, generator=generator)
    return TensorDataset(x, (x @ torch.randn(64, 10, generator=generator)).argmax(1))


def cross_entropy(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    return nn.functional.cross_entropy(model(batch[0]), batch[1])


def test_finder_picks_the_largest_size_under_the_budget_and_leaves_the_model_alone() -> None:
    model, dataset = mlp(), data()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    found = batching.find_batch_size(
        model, dataset, cross_entropy, optimizer, memory_budget="16MiB", record=False
    )
    budget = parse_bytes("16MiB") * 0.9
    chosen = next(t for t in found.trials if t.batch_size == found.batch_size)
    assert chosen.fits and chosen.peak_bytes is not None and chosen.peak_bytes <= budget
    # the boundary is bracketed: something within 5% above the choice did not fit
    too_big = [t.batch_size for t in found.trials if not t.fits]
    assert too_big and min(too_big) <= found.batch_size * 1.06 + 1
    # peaks grow with the batch, so the choice is the largest that fits among those tried
    assert found.batch_size == max(t.batch_size for t in found.trials if t.fits)
    assert "16.0 MiB" in found.limit
    # the probes' steps were undone: same weights, no optimiser state
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert optimizer.state_dict()["state"] == {}
    loader = found.loader(shuffle=True)
    assert next(iter(loader))[0].shape[0] == found.batch_size


def test_finder_stops_at_the_data_and_refuses_what_never_fits() -> None:
    small = data(rows=40)
    found = batching.find_batch_size(
        mlp(), small, cross_entropy, memory_budget="1GiB", start=4, record=False
    )
    assert found.batch_size == 40 and "largest size allowed" in found.limit
    with pytest.raises(InvalidInput, match="Even a batch of 4096 does not fit"):
        batching.find_batch_size(  # 32 MiB activations, where 1 MiB is allowed
            mlp(), data(), cross_entropy, memory_budget="1MiB", start=4096, record=False
        )
    with pytest.raises(InvalidInput, match="not a size"):
        batching.find_batch_size(mlp(), data(), cross_entropy, memory_budget="lots", record=False)
    assert parse_bytes("1.5 GB") == int(1.5 * 2**30) and parse_bytes("512mib") == 512 * 2**20


def test_noise_scale_recovers_the_noise_of_a_known_gradient() -> None:
    """Per-example gradients G + noise of variance 0.25 in 400 dimensions: tr(Σ) = 100, |G|² = 1,
    so B_noise = 100, whatever the two batch sizes are."""
    generator = torch.Generator().manual_seed(1)
    true = torch.zeros(400)
    true[0] = 1.0
    estimate = batching.NoiseScale(smoothing=0.98)
    for _ in range(400):
        per_example = true + 0.5 * torch.randn(64, 400, generator=generator)
        small, big = per_example[:16].mean(0), per_example.mean(0)
        estimate.update(float(small.pow(2).sum()), 16, float(big.pow(2).sum()), 64)
    assert estimate.value is not None and 80 < estimate.value < 125


def test_goodput_grows_a_noisy_batch_and_keeps_a_clean_one() -> None:
    grid = candidates(32, 1024, 8)
    assert grid[0] == 32 and grid[-1] == 1024 and all(b % 8 == 0 for b in grid)
    times = StepTimes()
    for step in range(5):  # a fixed cost per step dominates: larger batches are nearly free
        times.add(32, 0.010 + 32e-5, step)
        times.add(64, 0.010 + 64e-5, step)
    noisy = choose(32, grid, 32, noise=5000.0, times=times)
    assert noisy.batch == 64 and "goodput" in noisy.why  # at most a factor of 2 per decision
    assert choose(64, grid, 32, noise=4.0, times=times).batch == 64  # the fixed cost still pays
    linear = StepTimes()
    for step in range(5):  # the cost per example dominates: a larger batch is no faster per row
        linear.add(32, 0.001 + 32 * 3e-4, step)
        linear.add(64, 0.001 + 64 * 3e-4, step)
    clean = choose(64, grid, 32, noise=4.0, times=linear)
    assert clean.batch == 32  # past the noise scale a larger batch wastes examples
    single = StepTimes()
    single.add(32, 0.02, 0)
    explore = choose(32, grid, 32, noise=5000.0, times=single)
    assert explore.batch == 64 and "measure its speed" in explore.why
    assert choose(32, grid, 32, noise=1.0, times=single).batch == 32
    # a size last measured long ago is measured again before it counts
    assert times.model(now=10) is not None and times.model(now=10_000) is None


def test_warmup_ramps_the_batch_and_scales_the_learning_rate() -> None:
    model, dataset = mlp(), data(rows=2000)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    dyn = batching.DynamicBatch(
        dataset, optimizer, batch_size=16, warmup_to=64, warmup_steps=10, lr_rule="linear"
    )
    sizes, lrs, seen = [], [], []
    for batch in dyn.batches(0):
        sizes.append(batch[0].shape[0])
        lrs.append(optimizer.param_groups[0]["lr"])
        seen.append(batch[0])
        cross_entropy(model, batch).backward()
        dyn.step()
    assert sizes[:11] == [16, 20, 25, 30, 35, 40, 44, 49, 54, 59, 64]
    assert set(sizes[11:]) == {64}
    assert all(math.isclose(lr, 0.1 * s / 16) for lr, s in zip(lrs, sizes, strict=True))
    rows = torch.cat(seen)
    assert len(rows) == sum(sizes) <= 2000
    assert len(torch.unique(rows, dim=0)) == len(rows)  # no row twice in one epoch
    assert 2000 - len(rows) < 64  # and only the last short batch is left out
    dyn.set_base_lr(0.05)
    assert math.isclose(optimizer.param_groups[0]["lr"], 0.05 * 64 / 16)
    with pytest.raises(InvalidInput, match="lr_rule must be one of"):
        batching.DynamicBatch(dataset, optimizer, batch_size=16, lr_rule="cubic")


def test_a_resumed_loop_draws_the_same_batches_as_one_never_stopped() -> None:
    dataset = data(rows=600)

    def loop(dyn: batching.DynamicBatch, model: nn.Module, stop: int | None) -> list[torch.Tensor]:
        drawn: list[torch.Tensor] = []
        for epoch in range(3):
            for batch in dyn.batches(epoch):
                if dyn.global_step == stop:
                    return drawn
                drawn.append(batch[0])
                cross_entropy(model, batch).backward()
                dyn.step()
        return drawn

    def fresh() -> tuple[batching.DynamicBatch, nn.Module]:
        model = mlp()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        dyn = batching.DynamicBatch(dataset, optimizer, batch_size=8, warmup_to=32, warmup_steps=30)
        return dyn, model

    whole = loop(*fresh(), stop=None)
    first, model = fresh()
    before = loop(first, model, stop=41)  # mid-way through the second epoch
    second, model = fresh()
    second.load_state_dict(json.loads(json.dumps(first.state_dict())))  # as a checkpoint keeps it
    after = []
    for epoch in range(second._resume[0], 3):
        for batch in second.batches(epoch):
            after.append(batch[0])
            cross_entropy(model, batch).backward()
            second.step()
    assert len(before) + len(after) == len(whole)
    assert all(torch.equal(a, b) for a, b in zip(before + after, whole, strict=True))


def test_adaptive_measures_the_noise_on_one_process_and_says_why_it_resizes() -> None:
    model, dataset = mlp(), data(rows=2048)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    dyn = batching.DynamicBatch(
        dataset, optimizer, batch_size=32, adaptive=True, measure_every=2, decide_every=10
    )
    for batch in dyn.batches(0):
        loss = dyn.backward(lambda b: cross_entropy(model, b), batch)
        assert loss.shape == () and not loss.requires_grad
        dyn.step()
    assert dyn.noise.samples >= 10 and dyn.noise.value is not None and dyn.noise.value > 0
    for change in dyn.changes:  # each resize says why, and lands on the world's multiple
        assert change["why"].startswith("noise scale") and change["to"] % dyn.granule == 0


def test_adaptive_rejects_a_batch_it_cannot_cut_in_two() -> None:
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    dyn = batching.DynamicBatch(data(), optimizer, batch_size=8, adaptive=True)
    with pytest.raises(InvalidInput, match="cannot cut a str in two"):
        dyn.backward(lambda b: torch.zeros((), requires_grad=True), "not a batch")


TORCHRUN_SCRIPT = """
import json, sys
import torch, torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import TensorDataset
from naiad.runtime import batching

dist.init_process_group("gloo")
rank = dist.get_rank()
torch.manual_seed(0)
model = DistributedDataParallel(nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4)))
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
g = torch.Generator().manual_seed(0)
rows = TensorDataset(torch.arange(3000).float()[:, None].repeat(1, 16) / 3000,
                     torch.randint(0, 4, (3000,), generator=g))
dyn = batching.DynamicBatch(rows, optimizer, batch_size=16, model=model, adaptive=True,
                            measure_every=1, decide_every=8, max_batch=256)
dyn.resize(32, "a test's own resize", start=5)
steps = []
for epoch in range(2):
    for x, y in dyn.batches(epoch):
        steps.append([dyn.global_step, x.shape[0], (x[:, 0] * 3000).round().int().tolist()])
        nn.functional.cross_entropy(model(x), y).backward()
        dyn.step()
out = {"steps": steps, "changes": dyn.changes, "noise": dyn.noise.samples}
open(sys.argv[1] + f"/rank{rank}.json", "w").write(json.dumps(out))
dist.barrier()  # no rank tears gloo down while its peer still talks to it (a SIGABRT)
dist.destroy_process_group()
"""


def test_under_torchrun_every_rank_takes_equal_disjoint_batches_and_resizes_together(
    tmp_path: Path,
) -> None:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(TORCHRUN_SCRIPT))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NAIAD_")}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         str(script), str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[:4000]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["changes"] == ranks[1]["changes"]
    assert ranks[0]["changes"][0] == {"step": 5, "from": 16, "to": 32, "why": "a test's own resize"}
    assert ranks[0]["noise"] > 10  # measured from each rank's gradient before DDP averaged it
    for mine, theirs in zip(ranks[0]["steps"], ranks[1]["steps"], strict=True):
        assert mine[0] == theirs[0] and mine[1] == theirs[1]  # same step, same size
        assert not set(mine[2]) & set(theirs[2])  # and no row on both ranks
    assert [s[1] for s in ranks[0]["steps"][:6]] == [8, 8, 8, 8, 8, 16]
