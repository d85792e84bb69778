"""Fine-tune a ResNet-18 from a checkpoint file: a new head, learning rates per stage, DDP.

    .venv/bin/python examples/finetune/make_images.py data/finetune --base data/finetune/base
    naiad train train.py --source examples/finetune --procs 2 --hp epochs=3 \
        --input base=data/finetune/base --input train=data/finetune/train \
        --input validation=data/finetune/validation --follow

The ``base`` channel holds one weights file in torchvision's layout (``.safetensors``,
``.pth`` or ``.pt``; ``--hp base_file=NAME`` picks one of several). Its sha256 is logged
as the run's ``base_sha256`` param, which a registered model's lineage keeps; pass
``--hp base_sha256=...`` as well to refuse any other file. ``train`` and
``validation`` are image folders, one folder per class, of ``.npy`` arrays (3xHxW,
uint8 or float in [0, 1]) and, when Pillow is installed, ``.png``/``.jpg`` files.
"""

import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from naiad import runtime
from naiad.models import finetune, zoo

WEIGHTS = (".safetensors", ".pth", ".pt")
IMAGES = (".npy", ".png", ".jpg", ".jpeg")


def read_image(path: Path) -> np.ndarray:
    if path.suffix == ".npy":
        pixels = np.load(path, allow_pickle=False)
    else:
        from PIL import Image  # type: ignore[import-not-found]  # optional: .png/.jpg only

        pixels = np.asarray(Image.open(path).convert("RGB")).transpose(2, 0, 1)
    pixels = pixels.astype(np.float32)
    return pixels / 255.0 if pixels.max() > 1.0 else pixels


def image_folder(
    root: Path, classes: list[str] | None = None
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Images and labels from ``root/<class>/*``; classes sorted by name, as ImageFolder does."""
    names = classes or sorted(p.name for p in root.iterdir() if p.is_dir())
    xs, ys = [], []
    for label, name in enumerate(names):
        for path in sorted((root / name).iterdir()):
            if path.suffix.lower() in IMAGES:
                xs.append(read_image(path))
                ys.append(label)
    if not xs:
        raise SystemExit(f"No images under {root} (expected {root}/<class>/*.npy).")
    return torch.from_numpy(np.stack(xs)), torch.tensor(ys), names


def base_weights(channel: Path, name: str) -> Path:
    if name:
        return channel / name
    found = sorted(p for p in channel.rglob("*") if p.suffix in WEIGHTS)
    if len(found) != 1:
        raise SystemExit(
            f"The base channel holds {len(found)} weights files; give one with --hp base_file=NAME."
        )
    return found[0]


def main() -> None:
    ctx = runtime.context()
    hp = ctx.hyperparameters
    epochs, batch = hp.get_int("epochs", 3), hp.get_int("batch_size", 8)
    lr, seed = hp.get_float("lr", 0.01), hp.get_int("seed", 0)
    dist_info = runtime.init_distributed()
    rank, world = dist_info.rank, dist_info.world_size

    x, y, classes = image_folder(ctx.channel("train"))
    x_val, y_val, _ = image_folder(ctx.channel("validation"), classes)
    torch.manual_seed(seed)
    model = zoo.create(hp.get_str("arch", "resnet18"), num_classes=hp.get_int("base_classes", 1000))
    weights = base_weights(ctx.channel("base"), hp.get_str("base_file", ""))
    fingerprint = zoo.load_weights(model, weights)
    expected = hp.get_str("base_sha256", "")
    if expected and expected != fingerprint:
        raise SystemExit(f"{weights.name} has sha256 {fingerprint}, not the {expected} asked for.")
    finetune.record_base(ctx, fingerprint, weights.name)
    finetune.replace_head(model, len(classes))
    if hp.get_str("freeze", ""):
        finetune.freeze(model, upto=hp.get_str("freeze"))
    groups = finetune.param_groups(model, lr=lr, decay=hp.get_float("decay", 0.3))
    optimizer = torch.optim.SGD(groups, momentum=0.9)
    first_epoch = 0
    checkpoint = runtime.checkpoints.latest()
    if checkpoint is not None:
        model.load_state_dict(checkpoint["state"]["model"])
        optimizer.load_state_dict(checkpoint["state"]["optimizer"])
        first_epoch = checkpoint["step"] + 1
    trained = DistributedDataParallel(model) if world > 1 else model
    steps_per_epoch = max(1, len(y) // (batch * world))
    if ctx.is_main:
        print(f"base {weights.name} sha256 {fingerprint}; classes {classes}", flush=True)

    for epoch in range(first_epoch, epochs):
        started = time.perf_counter()
        model.train()
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed + epoch))
        for i in range(steps_per_epoch):
            start = (i * world + rank) * batch
            idx = order[start : start + batch]
            loss = nn.functional.cross_entropy(trained(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            ctx.log_metrics({"train/loss": loss.item()}, step=epoch * steps_per_epoch + i)
        # BatchNorm's statistics from the new data, not the base's: few steps barely move them
        finetune.recalibrate_batchnorm(model, x.split(batch * 4))
        model.eval()
        with torch.no_grad():
            accuracy = (model(x_val).argmax(1) == y_val).float().mean().item()
        ctx.log_metrics({"epoch": epoch, "val/accuracy": accuracy}, step=epoch)
        if ctx.is_main:
            print(
                f"epoch {epoch + 1}/{epochs}  loss {loss.item():.4f}  val/accuracy {accuracy:.4f}"
                f"  ({time.perf_counter() - started:.1f}s)",
                flush=True,
            )
        runtime.checkpoints.save(
            {"model": model.state_dict(), "optimizer": optimizer.state_dict()}, step=epoch
        )

    if ctx.is_main:
        path = runtime.save_model(model.eval(), x[:1], classes=classes)
        print(f"saved the model to {path}")
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
