"""The autoscaling policy as a pure function: windows, cool-down, bounds, scale to zero and
back, each decision's reason."""

from naiad.schemas.endpoints import AutoscalingSpec
from naiad.server.controller.autoscale import Decision, Memory, Observation, decide, wanted

POLICY = AutoscalingSpec(
    min_replicas=1,
    max_replicas=4,
    target_in_flight=4,
    scale_up_after_s=3,
    scale_down_after_s=10,
    cooldown_s=5,
    idle_after_s=20,
)


def replay(
    policy: AutoscalingSpec, replicas: int, loads: list[tuple[float, float]], start: float = 0.0
) -> list[tuple[float, Decision]]:
    """Feed (seconds from ``start``, in flight) one a second; the count follows the decisions."""
    memory = Memory()
    decisions = []
    for at, in_flight in loads:
        requests = 0 if in_flight == 0 else 10
        seen = Observation(start + at, replicas, in_flight, requests)
        memory, decision = decide(policy, memory, seen)
        if decision is not None:
            decisions.append((at, decision))
            replicas = decision.replicas
    return decisions


def steady(load: float, since: int, until: int) -> list[tuple[float, float]]:
    return [(float(t), load) for t in range(since, until)]


def test_wanted_is_the_load_over_the_target_within_the_bounds() -> None:
    assert [wanted(POLICY, x) for x in (0, 0.5, 4, 4.01, 8, 100)] == [1, 1, 1, 2, 2, 4]
    at_zero = POLICY.model_copy(update={"min_replicas": 0})
    assert wanted(at_zero, 0) == 1  # while it has replicas; zero is the idle rule's
    assert wanted(POLICY.model_copy(update={"min_replicas": 3}), 1) == 3


def test_up_only_after_the_load_stays_above_the_target_for_the_window() -> None:
    assert replay(POLICY, 1, steady(9, 0, 3)) == []  # 3 observations: 0, 1, 2 s
    [(at, decision)] = replay(POLICY, 1, steady(9, 0, 4))
    assert at == 3 and decision.replicas == 3
    assert decision.reason == (
        "Scaled up from 1 to 3 replica(s): above the target of 4 for 3s "
        "(9.0 request(s) in flight per replica now)."
    )
    # A dip below the target starts the window again.
    dipped = [*steady(9, 0, 2), (2.0, 1.0), *steady(9, 3, 6)]
    assert replay(POLICY, 1, dipped) == []


def test_up_to_the_least_wanted_along_the_window_never_past_max() -> None:
    spiky = [(0.0, 9.0), (1.0, 30.0), (2.0, 6.0), (3.0, 30.0)]
    [(_, decision)] = replay(POLICY, 1, spiky)
    assert decision.replicas == 2  # 6 in flight wanted 2: the spikes don't count alone
    [(_, decision)] = replay(POLICY, 1, steady(1000, 0, 4))
    assert decision.replicas == 4


def test_cool_down_then_down_to_the_most_wanted_along_the_window() -> None:
    loads = [*steady(9, 0, 4), *steady(6, 4, 9), *steady(0.5, 9, 40)]
    decisions = replay(POLICY, 1, loads)
    # From 4 s fewer would do (6 in flight wanted 2, then 0.5 wanted 1): the stretch runs
    # through the cool-down and ends at 14 s, with the most it wanted; then 1, 10 s later.
    assert [(at, d.replicas) for at, d in decisions] == [(3, 3), (14, 2), (25, 1)]
    assert decisions[1][1].reason == (
        "Scaled down from 3 to 2 replica(s): 2 would have held the load within the target "
        "of 4 for 10s (0.2 request(s) in flight per replica now)."
    )
    wavering = [*steady(0.5, 0, 5), (5.0, 6.0), *steady(0.5, 6, 16)]
    assert [d.replicas for _, d in replay(POLICY, 3, wavering)] == [2]  # 6 wanted 2


def test_never_below_min_nor_to_zero_unless_min_is_zero() -> None:
    two = POLICY.model_copy(update={"min_replicas": 2})
    assert [d.replicas for _, d in replay(two, 3, steady(0, 0, 100))] == [2]
    assert [d.replicas for _, d in replay(POLICY, 3, steady(0, 0, 100))] == [1]


def test_idle_scales_to_zero_and_the_first_request_brings_one_back_at_once() -> None:
    zero = POLICY.model_copy(update={"min_replicas": 0})
    decisions = replay(zero, 2, steady(0, 0, 30))
    assert [(at, d.replicas) for at, d in decisions] == [(10, 1), (20, 0)]
    assert decisions[1][1].reason == (
        "Scaled to zero from 1 replica(s): no request for 20s; the next request starts one."
    )
    # A trickle of requests keeps one replica.
    trickle = [(float(t), 0.0 if t % 15 else 0.01) for t in range(60)]
    assert [d.replicas for _, d in replay(zero, 1, trickle)] == []

    memory, decision = decide(zero, Memory(changed_at=100.0), Observation(100.5, 0, 0.0, 0))
    assert decision is None and memory.changed_at == 100.0
    memory, decision = decide(zero, memory, Observation(100.6, 0, 0.0, 0, demand=1))
    assert decision == Decision(1, "A request came while scaled to zero; starting 1 replica.")
    assert memory.changed_at == 100.6  # the cool-down did not hold it; it starts one now
