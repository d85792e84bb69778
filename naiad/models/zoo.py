"""ResNet and VGG in plain torch, with torchvision's ``state_dict`` keys and shapes.

A checkpoint saved from torchvision's ``resnet18`` (or from these classes) loads into
``create("resnet18")`` key for key, so weights move between the two without renaming::

    model = create("resnet50", num_classes=1000)
    fingerprint = load_weights(model, "https://example.org/resnet50.safetensors")

``load_weights`` reads a local file, an ``s3://bucket/key`` object or an ``http(s)://``
URL (downloaded once into a cache), in safetensors or ``torch.save`` format, and returns
the file's sha256 so a job can record which base it started from.
"""

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from naiad.core.errors import InvalidInput
from naiad.core.home import default_home

__all__ = [
    "ARCHITECTURES",
    "VGG",
    "BasicBlock",
    "Bottleneck",
    "ResNet",
    "create",
    "fingerprint_file",
    "load_weights",
    "read_state_dict",
]


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and a shortcut (ResNet-18 and -34)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = _shortcut(inplanes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1, 3x3 (with the stride, as torchvision's v1.5) and 1x1 convolutions (ResNet-50)."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _shortcut(inplanes, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _shortcut(inplanes: int, outplanes: int, stride: int) -> nn.Sequential | None:
    if stride == 1 and inplanes == outplanes:
        return None
    return nn.Sequential(
        nn.Conv2d(inplanes, outplanes, 1, stride, bias=False), nn.BatchNorm2d(outplanes)
    )


class ResNet(nn.Module):
    """A stem (conv1, bn1, max pool), four stages ``layer1..layer4`` and the ``fc`` head."""

    def __init__(
        self, block: type[BasicBlock | Bottleneck], layers: list[int], num_classes: int = 1000
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = 64
        stages = []
        for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers, strict=True)):
            stride = 1 if i == 0 else 2
            stage = []
            for b in range(blocks):
                stage.append(block(inplanes, planes, stride if b == 0 else 1))
                inplanes = planes * block.expansion
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# torchvision's configurations "A" (VGG-11) and "D" (VGG-16); "M" is a 2x2 max pool.
VGG_CONFIGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [
        *(64, 64, "M", 128, 128, "M", 256, 256, 256, "M"),
        *(512, 512, 512, "M", 512, 512, 512, "M"),
    ],
}


class VGG(nn.Module):
    """``features`` (3x3 convolutions, ReLU, max pools), a 7x7 pool and ``classifier``."""

    def __init__(self, config: list[int | str], num_classes: int = 1000, dropout: float = 0.5):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in config:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, int(item), 3, padding=1), nn.ReLU(inplace=True)]
                channels = int(item)
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(True),
            nn.Dropout(dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(True),
            nn.Dropout(dropout),
            nn.Linear(4096, num_classes),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


ARCHITECTURES: dict[str, Callable[[int], nn.Module]] = {
    "resnet18": lambda n: ResNet(BasicBlock, [2, 2, 2, 2], n),
    "resnet34": lambda n: ResNet(BasicBlock, [3, 4, 6, 3], n),
    "resnet50": lambda n: ResNet(Bottleneck, [3, 4, 6, 3], n),
    "vgg11": lambda n: VGG(VGG_CONFIGS["vgg11"], n),
    "vgg16": lambda n: VGG(VGG_CONFIGS["vgg16"], n),
}


def create(name: str, num_classes: int = 1000) -> nn.Module:
    """A freshly initialised network by name (``resnet18``, ``vgg16``, ...); no weights."""
    if name not in ARCHITECTURES:
        raise InvalidInput(
            f"Unknown architecture {name!r}; known ones are {', '.join(ARCHITECTURES)}."
        )
    if num_classes < 1:
        raise InvalidInput(f"num_classes must be at least 1; got {num_classes}.")
    return ARCHITECTURES[name](num_classes)


# --- weights ---------------------------------------------------------------------------

FORMATS = (".safetensors", ".pth", ".pt", ".bin")


def fingerprint_file(path: str | Path) -> str:
    """The file's sha256, in hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _cache_root(cache_dir: str | Path | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    return default_home() / "cache" / "weights"


def _cached_name(uri: str) -> str:
    base = uri.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0] or "weights"
    return f"{hashlib.sha256(uri.encode()).hexdigest()[:16]}-{base}"


def _atomic_fetch(target: Path, write: Callable[[Path], None]) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(dir=target.parent, prefix=".partial-")
    os.close(fd)
    try:
        write(Path(partial))
        os.replace(partial, target)
    finally:
        Path(partial).unlink(missing_ok=True)
    return target


def fetch_url(url: str, cache_dir: str | Path | None = None, timeout: float = 30.0) -> Path:
    """The local copy of an ``http(s)://`` URL, downloaded on the first call only."""
    target = _cache_root(cache_dir) / _cached_name(url)
    if target.is_file():
        return target

    def download(partial: Path) -> None:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response, open(partial, "wb") as f:
                shutil.copyfileobj(response, f)
        except urllib.error.HTTPError as exc:
            raise InvalidInput(f"Downloading {url} failed: HTTP {exc.code} {exc.reason}.") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise InvalidInput(
                f"Could not reach {url} ({reason}); the network may be unreachable from here. "
                f"Download the file elsewhere and pass its local path, or put it at {target}."
            ) from None

    return _atomic_fetch(target, download)


def fetch_s3(uri: str, cache_dir: str | Path | None = None) -> Path:
    """A local copy of ``s3://bucket/key``; the endpoint comes from ``NAIAD_S3_ENDPOINT_URL``
    or ``AWS_ENDPOINT_URL`` when set, credentials from boto3's usual chain."""
    import boto3
    import botocore.exceptions

    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket or not key:
        raise InvalidInput(f"{uri!r} is not an s3://bucket/key URI.")
    endpoint = os.environ.get("NAIAD_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")
    client = boto3.client("s3", endpoint_url=endpoint or None)
    target = _cache_root(cache_dir) / _cached_name(uri)

    def download(partial: Path) -> None:
        try:
            client.download_file(bucket, key, str(partial))
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise InvalidInput(f"Could not read {uri}: {exc}.") from None

    return _atomic_fetch(target, download)  # always fresh: an object may be overwritten


def resolve(source: str | Path, cache_dir: str | Path | None = None) -> Path:
    """The local file behind ``source``: a path, ``s3://`` or ``http(s)://``."""
    text = str(source)
    if text.startswith("s3://"):
        return fetch_s3(text, cache_dir)
    if text.startswith(("https://", "http://")):
        return fetch_url(text, cache_dir)
    path = Path(text.removeprefix("file://")).expanduser()
    if not path.is_file():
        raise InvalidInput(f"No weights file at {path}.")
    return path


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors by key from a safetensors or ``torch.save`` file, unwrapped and de-prefixed.

    A ``torch.save`` file may hold the state dict itself or one under ``state_dict`` or
    ``model``; the ``module.`` prefix a DistributedDataParallel model adds is removed.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        state: Any = load_file(str(path))
    elif suffix in FORMATS:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # unpickling errors come in many types
            raise InvalidInput(
                f"{path.name} could not be read as tensors only ({type(exc).__name__}); "
                "save a state_dict (torch.save(model.state_dict(), ...)) or a .safetensors file."
            ) from None
        for nested in ("state_dict", "model"):
            if isinstance(state, Mapping) and isinstance(state.get(nested), Mapping):
                state = state[nested]
                break
    else:
        raise InvalidInput(
            f"{path.name}: unknown weights format {suffix or '(no suffix)'}; "
            f"known ones are {', '.join(FORMATS)}."
        )
    if not isinstance(state, Mapping) or not all(
        isinstance(v, torch.Tensor) for v in state.values()
    ):
        raise InvalidInput(f"{path.name} holds no state_dict of tensors.")
    if state and all(str(k).startswith("module.") for k in state):
        state = {str(k).removeprefix("module."): v for k, v in state.items()}
    return {str(k): v for k, v in state.items()}


def _first(keys: list[str], n: int = 5) -> str:
    shown = ", ".join(keys[:n])
    return shown + (f" and {len(keys) - n} more" if len(keys) > n else "")


def load_weights(
    model: nn.Module,
    source: str | Path,
    *,
    strict: bool = True,
    cache_dir: str | Path | None = None,
) -> str:
    """Load ``source``'s weights into ``model`` and return the file's sha256.

    ``strict=False`` loads the keys whose names and shapes match and leaves the rest as
    initialised (for a checkpoint with another number of classes, say).
    """
    path = resolve(source, cache_dir)
    state = read_state_dict(path)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    reshaped = [k for k in own if k in state and state[k].shape != own[k].shape]
    if strict and (missing or unexpected or reshaped):
        problems = []
        if missing:
            problems.append(f"missing {len(missing)} key(s): {_first(missing)}")
        if unexpected:
            problems.append(f"unexpected {len(unexpected)} key(s): {_first(unexpected)}")
        if reshaped:
            shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in reshaped]
            problems.append(f"different shapes: {_first(shapes, 3)}")
        raise InvalidInput(
            f"The weights in {path.name} do not fit {type(model).__name__}: "
            + "; ".join(problems)
            + ". If only the head differs (another num_classes), create the model with the "
            "checkpoint's num_classes and call finetune.replace_head after loading, or pass "
            "strict=False to load the rest; otherwise check the architecture name."
        )
    fitting = {k: v for k, v in state.items() if k in own and k not in reshaped}
    model.load_state_dict(fitting, strict=False)
    return fingerprint_file(path)
