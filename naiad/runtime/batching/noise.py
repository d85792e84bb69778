"""The gradient noise scale, and the batch size it says pays best.

The simple noise scale of McCandlish et al. (2018, "An Empirical Model of Large-Batch
Training", appendix A.1) is ``B_noise = tr(Σ) / |G|²``: the batch size past which a larger
batch stops cutting the steps to a given loss in proportion. It is estimated from the
squared gradient norm at two batch sizes, with the same weights: under torchrun ``B_small``
is one rank's batch and ``B_big`` the global batch; on one process they are a quarter of a
batch and the whole batch:

    |G|²  ≈ (B_big |G_big|² - B_small |G_small|²) / (B_big - B_small)
    tr(Σ) ≈ (|G_small|² - |G_big|²) / (1 / B_small - 1 / B_big)

each smoothed with an exponential moving average before the ratio is taken, as the two
estimates are noisy on their own.

Goodput (Qiao et al., "Pollux", OSDI 2021) weighs a batch size's throughput by its
statistical efficiency, the progress per example relative to the base batch ``B_0``:
``efficiency(B) = (B_noise + B_0) / (B_noise + B)``. The throughput model is the one Pollux
fits, a step's time ``t(B) = a + b B``, from the step times seen at each size so far.
"""

import math
import statistics
from dataclasses import dataclass


class NoiseScale:
    """Smoothed estimates of ``|G|²`` and ``tr(Σ)``, and their ratio."""

    def __init__(self, smoothing: float = 0.9) -> None:
        self.smoothing = smoothing
        self.grad_sq: float | None = None
        self.trace: float | None = None
        self.samples = 0

    def update(self, small_sq: float, small_batch: int, big_sq: float, big_batch: int) -> None:
        if big_batch <= small_batch or not (math.isfinite(small_sq) and math.isfinite(big_sq)):
            return
        grad_sq = (big_batch * big_sq - small_batch * small_sq) / (big_batch - small_batch)
        trace = (small_sq - big_sq) / (1 / small_batch - 1 / big_batch)
        self.grad_sq = self._smooth(self.grad_sq, grad_sq)
        self.trace = self._smooth(self.trace, trace)
        self.samples += 1

    def _smooth(self, old: float | None, new: float) -> float:
        return new if old is None else self.smoothing * old + (1 - self.smoothing) * new

    @property
    def value(self) -> float | None:
        """``B_noise``, or None before any sample; large when the gradient is mostly noise."""
        if self.grad_sq is None or self.trace is None:
            return None
        if self.grad_sq <= 0:  # the gradient's norm is lost in the estimate's own noise
            return None
        return max(self.trace, 0.0) / self.grad_sq

    def state_dict(self) -> dict:
        return {"grad_sq": self.grad_sq, "trace": self.trace, "samples": self.samples}

    def load_state_dict(self, state: dict) -> None:
        self.grad_sq, self.trace = state["grad_sq"], state["trace"]
        self.samples = state["samples"]


def efficiency(batch: int, base_batch: int, noise: float) -> float:
    """Progress per example at ``batch`` relative to ``base_batch`` (1 at the base)."""
    return (noise + base_batch) / (noise + batch)


class StepTimes:
    """Seconds per step at each global batch size seen: the median of the latest ``keep``
    steps, as single steps are noisy (a busy machine, a garbage collection), and the line
    through them. A size not measured in the last ``horizon`` steps is left out of the
    line, so a size measured once on a busy machine is measured again, not trusted for
    the rest of the run."""

    def __init__(self, keep: int = 30, horizon: int = 500) -> None:
        self.keep, self.horizon = keep, horizon
        self.recent: dict[int, list[float]] = {}
        self.last_step: dict[int, int] = {}

    def add(self, batch: int, seconds: float, step: int) -> None:
        recent = self.recent.setdefault(batch, [])
        recent.append(seconds)
        del recent[: -self.keep]
        self.last_step[batch] = step

    def seconds(self, now: int) -> dict[int, float]:
        """The median step time of each size measured lately."""
        return {
            batch: statistics.median(times)
            for batch, times in self.recent.items()
            if self.last_step.get(batch, now) >= now - self.horizon
        }

    def model(self, now: int) -> tuple[float, float] | None:
        """``(a, b)`` of ``t(B) = a + b B`` by least squares over the sizes measured lately;
        None with fewer than 2 of them."""
        seconds = self.seconds(now)
        if len(seconds) < 2:
            return None
        xs, ys = list(seconds), list(seconds.values())
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        var = sum((x - mx) ** 2 for x in xs)
        beta = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var
        beta = max(beta, 1e-12)
        alpha = max(my - beta * mx, 0.0)
        return alpha, beta

    def state_dict(self) -> dict:
        return {
            "recent": {str(k): v for k, v in self.recent.items()},
            "last_step": {str(k): v for k, v in self.last_step.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        self.recent = {int(k): list(v) for k, v in state["recent"].items()}
        self.last_step = {int(k): int(v) for k, v in state["last_step"].items()}


@dataclass(frozen=True)
class Choice:
    batch: int
    why: str


def choose(
    current: int,
    candidates: list[int],
    base_batch: int,
    noise: float,
    times: StepTimes,
    explore_gain: float = 1.5,
    min_gain: float = 1.1,
    now: int = 0,
) -> Choice:
    """The candidate of the best goodput, or the next size up to measure, or ``current``.

    With step times at one size only, the throughput of another is unknown: when even
    perfect scaling would not gain ``explore_gain``, stay; otherwise try up to twice the
    size, so its time is measured. A change must gain ``min_gain``, which keeps the size from
    flapping on noise.
    """
    described = f"{noise:,.0f}"
    model = times.model(now)
    if model is None:
        larger = [c for c in candidates if current < c <= current * 2]
        if not larger:
            return Choice(current, f"noise scale {described}; already at the largest size")
        step_up = larger[-1]  # twice the size, as far as allowed: two distant points fit a line
        best_case = (step_up / current) * efficiency(step_up, base_batch, noise)
        best_case /= efficiency(current, base_batch, noise)
        if best_case >= explore_gain:
            return Choice(
                step_up,
                f"noise scale {described}: up to {best_case - 1:+.0%} goodput at {step_up}; "
                "trying it to measure its speed",
            )
        return Choice(current, f"noise scale {described}: a larger batch would not pay")
    alpha, beta = model

    def goodput(batch: int) -> float:
        return batch / (alpha + beta * batch) * efficiency(batch, base_batch, noise)

    # at most a factor of 2 each way: the line is fitted on the sizes measured,
    # and a far-off size is a guess until it is measured too
    near = [c for c in candidates if current / 2 <= c <= current * 2]
    best = max(near or [current], key=goodput)
    gain = goodput(best) / goodput(current)
    if best != current and gain >= min_gain:
        return Choice(best, f"noise scale {described}: goodput {gain - 1:+.0%} at {best}")
    return Choice(current, f"noise scale {described}: {current} has the best goodput")
