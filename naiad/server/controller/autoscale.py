"""Autoscaling: how many replicas a variant should have, as a pure function of what the
keeper observed and the clock (no I/O, like ``serving.batcher.plan``), so every rule is
tested without a server.

The keeper calls :func:`decide` for each autoscaled variant on every tick with an
:class:`Observation` and the :class:`Memory` the previous call returned:

- the replicas it wants for the load are ``ceil(in_flight / target_in_flight)``, kept
  within ``max(min_replicas, 1)..max_replicas``;
- more than it has, for ``scale_up_after_s`` without a break: it goes up, to the least it
  wanted over that stretch (one spike does not jump to the maximum);
- fewer, for ``scale_down_after_s``: it goes down, to the most it wanted over that stretch;
- after any change, nothing else changes for ``cooldown_s``: the new replicas' effect shows
  in the figures before the next step;
- with ``min_replicas`` 0, no request for ``idle_after_s``: the last replica stops;
- at zero, any demand (a request waiting at the front door, or traffic on another variant
  of the endpoint) starts one replica at once, whatever the cool-down.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

from naiad.schemas.endpoints import AutoscalingSpec


@dataclass(frozen=True)
class Observation:
    """One variant as the keeper sees it now."""

    at: float  # the keeper's monotonic clock, seconds
    replicas: int  # the count it has now (the spec's, not how many are healthy yet)
    in_flight: float  # requests its replicas held, on average over the last interval
    requests: int  # requests answered over the last interval, or held or waiting now
    demand: int = 0  # at zero: requests waiting for it, or served by another variant


@dataclass(frozen=True)
class Stretch:
    """A run of observations that all wanted more (or all fewer) replicas."""

    since: float
    wanted: int  # the least (going up) or the most (going down) wanted along it


@dataclass(frozen=True)
class Memory:
    """What the policy keeps between calls; the keeper holds one per variant."""

    up: Stretch | None = None
    down: Stretch | None = None
    idle_since: float | None = None
    changed_at: float = -math.inf


@dataclass(frozen=True)
class Decision:
    replicas: int
    reason: str


def wanted(policy: AutoscalingSpec, in_flight: float) -> int:
    """Replicas that hold ``in_flight`` requests at the target, within the bounds."""
    need = math.ceil(in_flight / policy.target_in_flight - 1e-9)
    return min(policy.max_replicas, max(policy.min_replicas, 1, need))


def _extend(
    stretch: Stretch | None, at: float, want: int, keep: Callable[[int, int], int]
) -> Stretch:
    if stretch is None:
        return Stretch(at, want)
    return Stretch(stretch.since, keep(stretch.wanted, want))


def _changed(memory: Memory, seen: Observation) -> Memory:
    """After a change: the stretches start again, the cool-down starts, idleness goes on."""
    return Memory(idle_since=memory.idle_since, changed_at=seen.at)


def decide(
    policy: AutoscalingSpec, memory: Memory, seen: Observation
) -> tuple[Memory, Decision | None]:
    """The memory to keep, and a change of replicas to make now (or None)."""
    n = seen.replicas
    if n == 0:
        if seen.demand:
            reason = "A request came while scaled to zero; starting 1 replica."
            return Memory(changed_at=seen.at), Decision(1, reason)
        return Memory(changed_at=memory.changed_at), None
    want = wanted(policy, seen.in_flight)
    idle = seen.requests == 0 and seen.in_flight == 0
    memory = Memory(
        up=_extend(memory.up, seen.at, want, min) if want > n else None,
        down=_extend(memory.down, seen.at, want, max) if want < n else None,
        idle_since=(seen.at if memory.idle_since is None else memory.idle_since) if idle else None,
        changed_at=memory.changed_at,
    )
    if seen.at - memory.changed_at < policy.cooldown_s:
        return memory, None
    per = f"{seen.in_flight / n:.1f} request(s) in flight per replica"
    target = f"the target of {policy.target_in_flight:g}"
    if memory.up is not None and seen.at - memory.up.since >= policy.scale_up_after_s:
        to = memory.up.wanted
        reason = (
            f"Scaled up from {n} to {to} replica(s): above {target} for "
            f"{policy.scale_up_after_s:g}s ({per} now)."
        )
        return _changed(memory, seen), Decision(to, reason)
    idle_for = seen.at - memory.idle_since if memory.idle_since is not None else -1.0
    if policy.min_replicas == 0 and idle_for >= policy.idle_after_s:
        reason = (
            f"Scaled to zero from {n} replica(s): no request for {policy.idle_after_s:g}s; "
            "the next request starts one."
        )
        return Memory(changed_at=seen.at), Decision(0, reason)
    if memory.down is not None and seen.at - memory.down.since >= policy.scale_down_after_s:
        to = memory.down.wanted
        reason = (
            f"Scaled down from {n} to {to} replica(s): {to} would have held the load within "
            f"{target} for {policy.scale_down_after_s:g}s ({per} now)."
        )
        return _changed(memory, seen), Decision(to, reason)
    return memory, None
