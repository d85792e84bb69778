"""Write a tiny image-folder dataset (one folder per class) for the fine-tuning example.

    .venv/bin/python examples/finetune/make_images.py data/finetune [--base data/finetune/base]

Images are 3x32x32 uint8 arrays saved as ``.npy`` (the example reads ``.npy`` always and
``.png``/``.jpg`` when Pillow is installed). Class ``red`` has a bright square in the red
channel, and so on, at a random place on a noisy background. ``--base DIR`` also writes
a freshly initialised ResNet-18 in torchvision's layout as ``DIR/resnet18.safetensors``,
a stand-in for a real pretrained checkpoint. Nothing is downloaded.
"""

import argparse
from pathlib import Path

import numpy as np

CLASSES = ("red", "green", "blue")


def image(rng: np.random.Generator, label: int, size: int = 32) -> np.ndarray:
    pixels = rng.integers(0, 80, size=(3, size, size), dtype=np.uint8)
    side = size // 2
    top, left = rng.integers(0, size - side, size=2)
    pixels[label, top : top + side, left : left + side] = rng.integers(180, 256, (side, side))
    return pixels


def write(root: Path, per_class: int, rng: np.random.Generator) -> None:
    for label, name in enumerate(CLASSES):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            np.save(folder / f"{i:04d}.npy", image(rng, label))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--train-per-class", type=int, default=16)
    parser.add_argument("--validation-per-class", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--base", type=Path, help="also write a ResNet-18 base checkpoint here")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    write(args.out / "train", args.train_per_class, rng)
    write(args.out / "validation", args.validation_per_class, rng)
    print(f"wrote {len(CLASSES)} classes to {args.out}/train and {args.out}/validation")
    if args.base is not None:
        import torch
        from safetensors.torch import save_file

        from naiad.models import zoo

        torch.manual_seed(args.seed)
        args.base.mkdir(parents=True, exist_ok=True)
        path = args.base / "resnet18.safetensors"
        state = {k: v.contiguous() for k, v in zoo.create("resnet18").state_dict().items()}
        save_file(state, str(path))
        print(f"wrote {path} (sha256 {zoo.fingerprint_file(path)})")


if __name__ == "__main__":
    main()
