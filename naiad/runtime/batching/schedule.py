"""Batch-size warm-up, and the rule that scales the learning rate with the batch.

Rules, for a batch ``B`` and the base batch ``B_0`` that the base learning rate was tuned at:
- ``linear``: ``lr = base_lr * B / B_0`` (Goyal et al. 2017, "Accurate, Large Minibatch SGD"),
  for SGD with momentum;
- ``sqrt``: ``lr = base_lr * sqrt(B / B_0)`` (Krizhevsky 2014; Hoffer et al. 2017), which
  keeps the gradient noise's variance per step constant, and suits Adam;
- ``none``: the learning rate is left alone.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

from naiad.core.errors import InvalidInput

RULES: dict[str, Callable[[float], float]] = {
    "linear": lambda ratio: ratio,
    "sqrt": math.sqrt,
    "none": lambda ratio: 1.0,
}


def lr_scale(batch: int, base_batch: int, rule: str) -> float:
    """How much to multiply the base learning rate by at ``batch``."""
    if rule not in RULES:
        raise InvalidInput(f"lr_rule must be one of {', '.join(RULES)}, not {rule!r}.")
    return RULES[rule](batch / base_batch)


def round_to(value: float, multiple: int) -> int:
    """``value`` rounded down to a multiple of ``multiple``, and at least one multiple."""
    return max(multiple, int(value) // multiple * multiple)


@dataclass(frozen=True)
class Warmup:
    """Ramp the global batch from ``start`` to ``end`` over ``steps`` steps, linearly in the
    batch size (as GPT-3's batch ramp does), in multiples of ``multiple_of``."""

    start: int
    end: int
    steps: int
    multiple_of: int = 1

    def __post_init__(self) -> None:
        if self.start < 1 or self.end < self.start or self.steps < 0:
            raise InvalidInput(
                f"A warm-up ramps up from a batch of at least 1 over 0 or more steps; got "
                f"start={self.start}, end={self.end}, steps={self.steps}."
            )

    def batch_size(self, step: int) -> int:
        if step >= self.steps:
            return round_to(self.end, self.multiple_of)
        value = self.start + (self.end - self.start) * step / self.steps
        return min(round_to(value, self.multiple_of), round_to(self.end, self.multiple_of))


def candidates(low: int, high: int, multiple_of: int) -> list[int]:
    """Sizes from ``low`` to ``high`` a factor of √2 apart, in multiples of ``multiple_of``."""
    found: list[int] = []
    value = float(low)
    while value <= high * 1.0001:
        size = round_to(value, multiple_of)
        if low <= size <= high and size not in found:
            found.append(size)
        value *= math.sqrt(2)
    top = round_to(high, multiple_of)
    if top >= low and top not in found:
        found.append(top)
    return found
