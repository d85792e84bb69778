"""Fine-tuning helpers: a new head, frozen stages, learning rates per stage, lineage.

A network is split into stages from input to output: a ResNet into ``stem``,
``layer1``..``layer4`` and ``head`` (``fc``); a VGG into ``features`` and
``classifier``. Any module with those attribute names works (torchvision's too)::

    replace_head(model, num_classes=3)
    freeze(model, upto="layer3")               # train layer4 and the head only
    optimizer = torch.optim.SGD(param_groups(model, lr=0.01), momentum=0.9)
"""

from collections.abc import Iterable
from typing import Any, Protocol

import torch
from torch import nn

from naiad.core.errors import InvalidInput

__all__ = ["freeze", "param_groups", "record_base", "replace_head", "stages", "unfreeze"]

RESNET_STAGES = ("stem", "layer1", "layer2", "layer3", "layer4", "head")
VGG_STAGES = ("features", "classifier")


def _unwrap(model: nn.Module) -> nn.Module:
    inner = getattr(model, "module", None)  # DistributedDataParallel
    return inner if isinstance(inner, nn.Module) else model


def _is_resnet(model: nn.Module) -> bool:
    return all(hasattr(model, a) for a in ("conv1", "bn1", "layer4", "fc"))


def _is_vgg(model: nn.Module) -> bool:
    return isinstance(getattr(model, "features", None), nn.Module) and isinstance(
        getattr(model, "classifier", None), nn.Sequential
    )


def stages(model: nn.Module) -> dict[str, list[nn.Module]]:
    """The model's stages, input to output: name -> the modules in it."""
    model = _unwrap(model)
    if _is_resnet(model):
        m: Any = model
        return {
            "stem": [m.conv1, m.bn1],
            "layer1": [m.layer1],
            "layer2": [m.layer2],
            "layer3": [m.layer3],
            "layer4": [m.layer4],
            "head": [m.fc],
        }
    if _is_vgg(model):
        v: Any = model
        return {"features": [v.features], "classifier": [v.classifier]}
    raise InvalidInput(
        f"{type(model).__name__} is neither a ResNet (conv1, bn1, layer1..4, fc) nor a VGG "
        "(features, classifier); the fine-tuning helpers know those two layouts."
    )


def replace_head(model: nn.Module, num_classes: int) -> nn.Linear:
    """Swap the last linear layer (ResNet ``fc``, VGG ``classifier.6``) for a fresh one."""
    model = _unwrap(model)
    if num_classes < 1:
        raise InvalidInput(f"num_classes must be at least 1; got {num_classes}.")
    stages(model)  # refuses an unknown layout with a sentence
    m: Any = model
    old = m.fc if _is_resnet(model) else m.classifier[-1]
    if not isinstance(old, nn.Linear):
        raise InvalidInput(f"The head is a {type(old).__name__}, not a Linear layer.")
    new = nn.Linear(old.in_features, num_classes).to(old.weight.device, old.weight.dtype)
    if _is_resnet(model):
        m.fc = new
    else:
        m.classifier[len(m.classifier) - 1] = new
    return new


def _set_trainable(modules: list[nn.Module], trainable: bool) -> None:
    for module in modules:
        for p in module.parameters():
            p.requires_grad_(trainable)


def freeze(model: nn.Module, upto: str = "layer3") -> list[str]:
    """Stop gradients for every stage up to and including ``upto``; returns their names.

    Batch-norm running statistics of a frozen stage still update in ``train()`` mode;
    call ``.eval()`` on those modules too to fix them.
    """
    found = stages(model)
    if upto not in found:
        raise InvalidInput(f"No stage {upto!r}; this model's stages are {', '.join(found)}.")
    names = list(found)
    frozen = names[: names.index(upto) + 1]
    for name, modules in found.items():
        _set_trainable(modules, name not in frozen)
    return frozen


def unfreeze(model: nn.Module) -> None:
    """Let every parameter train again."""
    for p in _unwrap(model).parameters():
        p.requires_grad_(True)


def param_groups(model: nn.Module, lr: float, decay: float = 0.3) -> list[dict[str, Any]]:
    """Optimizer groups with discriminative learning rates: the head gets ``lr``, the stage
    before it ``lr * decay``, the one before that ``lr * decay**2``, and so on. Frozen
    parameters are left out, as are stages with nothing left to train."""
    if lr <= 0 or not 0 < decay <= 1:
        raise InvalidInput(f"lr must be > 0 and decay in (0, 1]; got lr={lr}, decay={decay}.")
    found = stages(model)
    groups = []
    for k, (name, modules) in enumerate(reversed(found.items())):
        params = [p for m in modules for p in m.parameters() if p.requires_grad]
        if params:
            groups.append({"params": params, "lr": lr * decay**k, "name": name})
    return list(reversed(groups))


class _JobContext(Protocol):
    @property
    def is_main(self) -> bool: ...

    def tracking_run(self) -> Any: ...


def recalibrate_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor]) -> None:
    """Recompute every BatchNorm layer's running statistics over ``batches`` of the new data.

    A network fine-tuned for a few steps still evaluates with the statistics of the data
    it was first trained on (running averages move slowly), which can leave a head that
    fits its training batches at chance on validation. One pass in training mode, without
    gradients, over the new data sets them to that data's own averages.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    training = model.training
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average over the batches, not a moving one
    model.train()
    with torch.no_grad():
        for batch in batches:
            model(batch)
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
    model.train(training)


def record_base(ctx: _JobContext, fingerprint: str, source: str) -> dict[str, str]:
    """Log the base checkpoint (``base_sha256``, ``base_source``) as params of the job's run.

    ``ctx`` is ``naiad.runtime.context()``; only rank 0 logs, and outside a job nothing is
    logged. Returns the params.
    """
    params = {"base_sha256": fingerprint, "base_source": str(source)}
    run = ctx.tracking_run() if ctx.is_main else None
    if run is not None:
        run.log_params(params)
    return params
