"""runtime.parallelize: DDP and FSDP on two gloo processes train alike, FSDP holds half the
parameters on each rank, sharded checkpoints restore exactly, and the consolidated model
is a plain state_dict. The CUDA paths (NCCL, fp16 with a GradScaler) run where there is
a GPU."""

import json
import os
import shutil
import socket
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from naiad import runtime
from naiad.core.errors import InvalidInput
from naiad.runtime.distributed import DistInfo
from naiad.runtime.sharding import Parallel, latest_step

HIDDEN = 64
GLOBAL_BATCH = 64
STEPS = 8


def mlp() -> nn.Sequential:
    return nn.Sequential(nn.Linear(64, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 10))


def full_bytes() -> int:
    return sum(p.numel() * p.element_size() for p in mlp().parameters())


def digits(cached: Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's bundled digits; the workers read the parent's copy (faster to start)."""
    if cached is not None and cached.exists():
        return torch.load(cached, weights_only=True)
    from sklearn.datasets import load_digits

    data = load_digits()
    found = torch.tensor(data.data / 16.0, dtype=torch.float32), torch.tensor(data.target)
    if cached is not None:
        torch.save(found, cached)
    return found


def batches(rank: int, world: int, steps: int, cached: Path | None = None) -> list[tuple[Any, Any]]:
    """This rank's slice of each global batch, from one seeded permutation."""
    x, y = digits(cached)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    per_rank = GLOBAL_BATCH // world
    found = []
    for step in range(steps):
        idx = order[step * GLOBAL_BATCH + rank * per_rank :][:per_rank]
        found.append((x[idx], y[idx]))
    return found


def train(sharded: Parallel, optimizer: torch.optim.Optimizer, data: list[Any]) -> list[float]:
    losses = []
    for xb, yb in data:
        with sharded.autocast():
            loss = nn.functional.cross_entropy(
                sharded(xb.to(sharded.device)), yb.to(sharded.device)
            )
        optimizer.zero_grad(set_to_none=True)
        sharded.backward(loss)
        sharded.step(optimizer)
        losses.append(loss.item())
    return losses


def fresh(strategy: str, seed: int = 0, **kwargs: Any) -> tuple[Parallel, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    sharded = runtime.parallelize(mlp(), strategy, **kwargs)  # type: ignore[arg-type]
    return sharded, torch.optim.Adam(sharded.module.parameters(), lr=0.01)


def join(rank: int, world: int, port: int) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
    )
    torch.set_num_threads(1)


def cpu_worker(rank: int, world: int, port: int, out: str) -> None:
    """Everything the two-rank CPU test checks, in one process group (startup is the cost)."""
    join(rank, world, port)
    where = Path(out)
    found: dict[str, Any] = {}
    data = batches(rank, world, STEPS + 2, where / "digits.pt")

    ddp, ddp_opt = fresh("ddp")
    found["ddp_bytes"] = ddp.param_bytes()
    found["ddp"] = train(ddp, ddp_opt, data[:STEPS])
    ddp_state = ddp.full_state_dict()

    fsdp, fsdp_opt = fresh("fsdp")
    found["fsdp_bytes"] = fsdp.log_param_bytes()
    found["fsdp"] = train(fsdp, fsdp_opt, data[:STEPS])
    fsdp.save_checkpoint(fsdp_opt, STEPS, where=where / "checkpoints")
    fsdp.save_checkpoint(fsdp_opt, STEPS, where=where / f"host{rank}")  # machines of their own
    saved = fsdp.full_state_dict()
    found["full_state_sizes"] = [len(ddp_state), len(saved)]  # rank 0 only: on CPU
    fsdp.save_model(mlp(), data[0][0][:1], directory=where / "model", classes=list("0123456789"))
    found["continued"] = train(fsdp, fsdp_opt, data[STEPS:])

    restored, restored_opt = fresh("fsdp", seed=1)  # other weights, overwritten by the load
    found["loaded_step"] = restored.load_checkpoint(restored_opt, where=where / "checkpoints")
    loaded = restored.full_state_dict()
    found["resumed"] = train(restored, restored_opt, data[STEPS:])

    for strategy in ("ddp", "fsdp"):
        bf16, bf16_opt = fresh(strategy, mixed_precision="bf16")
        found[f"{strategy}_bf16"] = train(bf16, bf16_opt, data[:3])
    fsdp.close()

    (where / f"rank{rank}.json").write_text(json.dumps(found))
    if rank == 0:
        torch.save({"ddp": ddp_state, "fsdp": saved, "loaded": loaded}, where / "states.pt")


def spawn(worker: Callable[..., None], tmp_path: Path, world: int = 2) -> list[dict[str, Any]]:
    digits(tmp_path / "digits.pt")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(worker, args=(world, port, str(tmp_path)), nprocs=world, join=True)
    return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(world)]


def evaluate(model: Callable[[torch.Tensor], torch.Tensor]) -> tuple[float, float]:
    x, y = digits()
    with torch.no_grad():
        logits = model(x)
    loss = nn.functional.cross_entropy(logits, y).item()
    return loss, (logits.argmax(1) == y).float().mean().item()


@pytest.mark.slow
def test_ddp_and_fsdp_on_two_cpu_ranks(tmp_path: Path) -> None:
    ranks = spawn(cpu_worker, tmp_path)
    full = full_bytes()
    for found in ranks:
        assert found["ddp_bytes"] == full
        assert found["full_state_sizes"] == ([4, 4] if found is ranks[0] else [0, 0])
        assert found["fsdp_bytes"] == [full // 2, full // 2]  # each rank holds half
        # Same seed, same batches: the two strategies take the same steps.
        assert found["fsdp"] == pytest.approx(found["ddp"], abs=1e-5)
        assert found["ddp"][-1] < found["ddp"][0]
        # Resuming from the sharded checkpoint continues exactly where the save was.
        assert found["loaded_step"] == STEPS
        assert found["resumed"] == found["continued"]
        for strategy in ("ddp", "fsdp"):
            assert found[f"{strategy}_bf16"] == pytest.approx(found["ddp"][:3], abs=0.05)

    states = torch.load(tmp_path / "states.pt", weights_only=True)
    assert states["fsdp"].keys() == mlp().state_dict().keys()  # plain names, no wrapper's
    for name, tensor in states["fsdp"].items():
        assert type(tensor) is torch.Tensor and tensor.device.type == "cpu"
        assert torch.equal(states["loaded"][name], tensor)
        torch.testing.assert_close(tensor, states["ddp"][name], atol=1e-5, rtol=1e-4)

    plain_ddp, plain_fsdp = mlp(), mlp()
    plain_ddp.load_state_dict(states["ddp"])
    saved = torch.load(tmp_path / "model" / "state_dict.pt", weights_only=True)
    plain_fsdp.load_state_dict(saved)
    loss, accuracy = evaluate(plain_fsdp)
    assert (loss, accuracy) == pytest.approx(evaluate(plain_ddp), abs=1e-4)
    assert accuracy > 0.7
    with warnings.catch_warnings():  # deprecated in torch 2.13; save_model still writes it
        warnings.simplefilter("ignore", DeprecationWarning)
        traced = torch.jit.load(str(tmp_path / "model" / "model.pt"))
    assert evaluate(traced) == pytest.approx((loss, accuracy), abs=1e-6)
    manifest = json.loads((tmp_path / "model" / "naiad-model.json").read_text())
    assert manifest["signature"]["inputs"]["shape"] == [-1, 64]

    # Each machine publishes its own rank's shards; the mirror (which skips dot-files) puts
    # them together, and one process loads the two ranks' checkpoint whole.
    mirror = tmp_path / "mirror" / f"step-{STEPS:012d}"
    mirror.mkdir(parents=True)
    for host in ("host0", "host1"):
        shipped = sorted(p.name for p in (tmp_path / host).rglob("*") if p.is_file())
        assert shipped == (
            [".metadata", "__0_0.distcp", "metadata"] if host == "host0" else ["__1_0.distcp"]
        )
        for file in (tmp_path / host / mirror.name).glob("[!.]*"):
            shutil.copy(file, mirror / file.name)
    whole = mlp()
    info = DistInfo(0, 0, 1, None, "cpu")
    assert (
        Parallel(whole, "none", info, None, None).load_checkpoint(
            torch.optim.Adam(whole.parameters()), where=mirror.parent
        )
        == STEPS
    )
    for name, tensor in whole.state_dict().items():
        assert torch.equal(tensor, states["fsdp"][name])

    folders = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert folders == [f"step-{STEPS:012d}"]
    assert {".metadata", "metadata", "__0_0.distcp", "__1_0.distcp"} <= {
        p.name for p in (tmp_path / "checkpoints" / folders[0]).iterdir()
    }


@pytest.fixture
def one_process(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)


def test_one_process_gets_its_model_back_unwrapped(one_process: None) -> None:
    model = mlp()
    sharded = runtime.parallelize(model, "fsdp")
    assert sharded.module is model and sharded.strategy == "none"
    assert sharded.param_bytes() == full_bytes()
    assert runtime.parallelize(model, "ddp").module is model


def test_bad_arguments_are_sentences(one_process: None) -> None:
    with pytest.raises(InvalidInput, match="strategy must be one of none, ddp, fsdp"):
        runtime.parallelize(mlp(), "zero3")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="mixed_precision must be None, 'bf16' or 'fp16'"):
        runtime.parallelize(mlp(), "ddp", mixed_precision="int8")  # type: ignore[arg-type]
    if not torch.cuda.is_available():
        with pytest.raises(InvalidInput, match="'fp16' needs a GPU; on CPU use 'bf16'"):
            runtime.parallelize(mlp(), "ddp", mixed_precision="fp16")


def test_bf16_autocast_on_cpu(one_process: None) -> None:
    sharded = runtime.parallelize(mlp(), "ddp", mixed_precision="bf16")
    with sharded.autocast():
        out = sharded(torch.rand(4, 64))
    assert out.dtype == torch.bfloat16 and sharded.scaler is None


def test_checkpoints_keep_the_newest_and_ignore_a_partial_save(
    one_process: None, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    model = mlp()
    # A grad scaler's state (fp16 on a GPU) goes into the checkpoint beside the shards.
    sharded = Parallel(
        model,
        "none",
        DistInfo(0, 0, 1, None, "cpu"),
        None,
        torch.amp.GradScaler("cpu", init_scale=1024.0),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    data = batches(0, 1, 4)
    for step in range(1, 5):
        train(sharded, optimizer, data[step - 1 : step])
        sharded.save_checkpoint(optimizer, step, keep=2, where=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000000000003", "step-000000000004"]
    (tmp_path / ".step-000000000005.partial").mkdir()  # a save that crashed midway
    assert latest_step(tmp_path) == 4

    (tmp_path / "step-000000000004" / ".metadata").unlink()  # as a mirror restores it
    torch.manual_seed(1)
    other = mlp()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0)
    again = Parallel(other, "none", DistInfo(0, 0, 1, None, "cpu"), None, scaler)
    other_opt = torch.optim.Adam(other.parameters(), lr=0.01)
    assert again.load_checkpoint(other_opt, where=tmp_path) == 4
    for a, b in zip(model.parameters(), other.parameters(), strict=True):
        assert torch.equal(a, b)
    assert scaler.get_scale() == sharded.scaler.get_scale()  # type: ignore[union-attr]
    assert other_opt.state_dict()["state"][0]["step"] == 4
    assert (
        Parallel(mlp(), "none", again.info, None, None).load_checkpoint(
            torch.optim.Adam(mlp().parameters()), where=tmp_path / "none"
        )
        is None
    )


# --- CUDA: NCCL and fp16 with a grad scaler ---------------------------------------------


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fp16_on_one_gpu_scales_the_loss_and_checkpoints_the_scaler(
    one_process: None, tmp_path: Path
) -> None:
    sharded, optimizer = fresh("ddp", mixed_precision="fp16")
    assert sharded.device.startswith("cuda") and sharded.scaler is not None
    with sharded.autocast():
        assert sharded(torch.rand(4, 64, device=sharded.device)).dtype == torch.float16
    losses = train(sharded, optimizer, batches(0, 1, 20))
    assert losses[-1] < losses[0]
    sharded.save_checkpoint(optimizer, 20, where=tmp_path)
    again, again_opt = fresh("ddp", seed=1, mixed_precision="fp16")
    assert again.load_checkpoint(again_opt, where=tmp_path) == 20
    assert again.scaler.get_scale() == sharded.scaler.get_scale()  # type: ignore[union-attr]


def gpu_worker(rank: int, world: int, port: int, out: str) -> None:
    join(rank, world, port)
    found: dict[str, Any] = {}
    data = batches(rank, world, STEPS, Path(out) / "digits.pt")
    for strategy in ("ddp", "fsdp"):
        sharded, optimizer = fresh(strategy, mixed_precision="fp16")
        found[f"{strategy}_backend"] = sharded.info.backend
        found[f"{strategy}_bytes"] = sharded.param_bytes()
        found[strategy] = train(sharded, optimizer, data)
        sharded.save_checkpoint(optimizer, STEPS, where=Path(out) / strategy)
    sharded.close()
    (Path(out) / f"rank{rank}.json").write_text(json.dumps(found))


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
def test_fsdp_fp16_on_two_gpus_with_nccl(tmp_path: Path) -> None:
    for found in spawn(gpu_worker, tmp_path):
        assert found["fsdp_backend"] == "nccl"
        assert found["fsdp_bytes"] == found["ddp_bytes"] // 2
        # fp16 differs by strategy (autocast under DDP, a cast of the parameters under
        # FSDP) and the scaler may skip different steps: both learn, neither step by step.
        for strategy in ("ddp", "fsdp"):
            assert found[strategy][-1] < found[strategy][0]
