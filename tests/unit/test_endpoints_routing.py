"""The proxy's choices and the metrics book, without processes or sockets: weighted variants,
round-robin, retry on another replica, 503 when none is left; counter deltas across
replica restarts, percentiles from histograms, points summed into minutes for saving."""

import asyncio
import random
from collections import Counter
from collections.abc import Callable

import pytest

from naiad.core import frames
from naiad.server.proxy.inference import Router, VariantRoute
from naiad.server.proxy.lanes import Lanes
from naiad.server.proxy.upstream import Reply, Target, Unreachable
from naiad.server.traffic import history as endpoint_history
from naiad.server.traffic.book import (
    MetricsBook,
    batch_labels,
    point_figures,
    quantile_ms,
)

LE = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]
BATCH_LE = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096]


class FakeUpstream:
    """Answers with ``answer(target, body)``, which may raise Unreachable; as a replica that
    takes no frames, it answers a frame 404, so each request comes on its own."""

    def __init__(self, answer: Callable[[Target, bytes], Reply]) -> None:
        self.answer = answer
        self.calls: list[Target] = []

    async def post(self, target: Target, path: str, body: bytes, headers: dict) -> Reply:
        if path == frames.PATH:
            return Reply(404, {}, b"")
        self.calls.append(target)
        return self.answer(target, body)

    async def aclose(self) -> None:
        pass


def router_with(table: dict[str, tuple[VariantRoute, ...]], answer) -> Router:  # type: ignore[no-untyped-def]
    router = Router(MetricsBook())
    router.upstream = FakeUpstream(answer)  # type: ignore[assignment]
    router.lanes = Lanes(router.upstream)  # type: ignore[arg-type]
    router.publish(table)
    return router


A, B, C, D = (("127.0.0.1", port) for port in (1, 2, 3, 4))


def test_traffic_follows_weights_and_rotates_over_replicas() -> None:
    random.seed(0)
    main = VariantRoute("main", 90, (A, B))
    canary = VariantRoute("canary", 10, (C,))
    router = router_with({"e": (main, canary)}, lambda t, b: Reply(200, {}, b""))
    picks = [router._pick("e", (main, canary), set()) for _ in range(5000)]
    variants = Counter(v.name for v, _ in picks)  # type: ignore[misc]
    assert 0.87 < variants["main"] / 5000 < 0.93
    urls = [u for v, u in picks if v.name == "main"]  # type: ignore[misc]
    assert Counter(urls)[A] == pytest.approx(len(urls) / 2, abs=1)
    # A variant with no healthy replica, or weight 0, gets nothing; the others take it all.
    empty = VariantRoute("canary", 10, ())
    silent = VariantRoute("shadow", 0, (D,))
    assert {router._pick("e", (main, empty, silent), set())[0].name for _ in range(50)} == {  # type: ignore[index]
        "main"
    }
    assert router._pick("e", (main,), {A, B}) is None


def test_a_refused_connection_is_retried_on_another_replica() -> None:
    def answer(target: Target, body: bytes) -> Reply:
        if target == A:
            raise Unreachable("refused")
        headers = {"content-type": "text/plain", "retry-after": "3", "server": "x"}
        return Reply(429, headers, body + b"!")

    route = VariantRoute("v", 1, (A, B))
    router = router_with({"e": (route,)}, answer)

    async def main() -> None:
        for _ in range(4):
            got = await router.forward("e", b"x", {"content-type": "text/plain"})
            assert got is not None
            assert (got.status, got.body) == (429, b"x!")  # the replica's answer, as it is
            assert got.headers == {
                "content-type": "text/plain",
                "retry-after": "3",
                "x-naiad-variant": "v",
            }
        assert await router.forward("missing", b"", {}) is None
        await router.aclose()

    asyncio.run(main())
    figures = router.book.figures("e", [("v", "m:1", 1)], window_s=60)
    assert figures.retries == 1  # then A is left out for a moment
    assert router.upstream is None
    assert figures.variants[0].proxy_latency.p50_ms is not None


def test_no_replica_left_is_a_503_with_retry_after() -> None:
    def refuse(target: Target, body: bytes) -> Reply:
        raise Unreachable("closed before answering")

    router = router_with({"e": (VariantRoute("v", 1, (A, B)),)}, refuse)
    got = asyncio.run(router.forward("e", b"{}", {}))
    assert got is not None and got.status == 503
    assert got.headers["retry-after"] == "1"
    assert b"no healthy replica" in got.body
    assert router.upstream.calls == [A, B]  # type: ignore[union-attr]
    assert router.book.figures("e", [], 10).unavailable == 1


def snapshot(uptime: float, ok: int, errors: int = 0, bad: int = 0, batches: int = 0) -> dict:
    latency = [0] * (len(LE) + 1)
    latency[3] = ok  # every request took 5-10 ms
    sizes = [0] * (len(BATCH_LE) + 1)
    sizes[2] = batches  # batches of 3-4 rows
    return {
        "uptime_s": uptime,
        "requests": {"200": ok, "500": errors, "400": bad},
        "queue_depth": 2,
        "in_flight": 1,
        "latency_seconds": {"le": [*LE, "+Inf"], "counts": latency},
        "batch_rows": {"le": [*BATCH_LE, "+Inf"], "counts": sizes},
        "rows": batches * 4,
        "batches": batches,
    }


def test_counts_are_deltas_that_survive_replica_restarts() -> None:
    book = MetricsBook()
    # An old replica seen for the first time: what it did before is not today's traffic.
    book.observe("e", "v", {"a": snapshot(600, 1000), "b": snapshot(1, 10, batches=5)}, 100.0)
    book.observe("e", "v", {"a": snapshot(601, 1100, errors=2), "b": snapshot(2, 30)}, 101.0)
    book.observe(
        "e", "v", {"a": snapshot(0.5, 5, bad=3), "b": snapshot(3, 30)}, 102.0
    )  # a restarted
    figures = book.figures("e", [("v", "m:1", 2)], window_s=1e12)
    v = figures.variants[0]
    assert v.requests == 10 + (100 + 2 + 20) + (5 + 3)
    assert (v.errors, v.client_errors) == (2, 3)
    assert v.queue_depth == 4 and v.in_flight == 2 and v.replicas_healthy == 2
    assert v.batch_sizes == {"3-4": 5}
    assert 5 <= v.latency.p50_ms <= 10  # type: ignore[operator]
    assert [p.rps for p in figures.history["v"]] == [10.0, 122.0, 8.0]
    assert figures.history["v"][0].batch_mean == 4.0
    book.forget("e")
    assert book.figures("e", [("v", "m:1", 0)], 10).variants[0].requests == 0


def test_percentiles_and_batch_labels() -> None:
    assert quantile_ms([0.001, 0.002], [0, 0, 0], 0.5) is None
    assert quantile_ms([0.001, 0.002], [0, 10, 0], 0.5) == 1.5
    assert quantile_ms([0.001, 0.002], [0, 0, 4], 0.99) == 2.0  # past the last bound
    assert batch_labels([1, 2, 4, 8]) == ["1", "2", "3-4", "5-8", ">8"]


def test_unsaved_points_are_taken_once_summed_by_minute_and_outlive_a_rollout() -> None:
    book = MetricsBook()
    book.observe("e", "v1", {"a": snapshot(1, 10)}, 119.0)  # the minute from 60 s
    book.observe("e", "v1", {"a": snapshot(2, 30, batches=2)}, 121.0)  # from 120 s
    book.observe("e", "v1", {"a": snapshot(3, 40, errors=1)}, 150.0)
    book.observe("e", "v2", {"b": snapshot(1, 5)}, 121.5)
    book.forget("e", keep={"v1"})  # v2 rolled out of service: its points are still saved
    assert set(book.unsaved("e")) == {"v1", "v2"}
    taken = book.take_unsaved()
    assert set(taken) == {("e", "v1"), ("e", "v2")}
    assert book.take_unsaved() == {}  # taken once

    v1 = taken[("e", "v1")]
    minutes = endpoint_history.roll_up(v1.points, 60)
    assert sorted(minutes) == [60, 120]
    assert [minutes[m].requests for m in (60, 120)] == [10, 20 + 10 + 1]
    assert minutes[120].errors == 1 and minutes[120].batch_count == 2
    assert minutes[120].dt == 2.0 + 29.0 and minutes[120].at == 120.0  # seconds observed
    hour = endpoint_history.roll_up(minutes.values(), 3600)
    assert list(hour) == [0] and hour[0].requests == 41
    assert sum(hour[0].latency) == 40  # histograms add (the 200s), so percentiles stay true
    figures = point_figures(hour[0], v1.latency_le)
    assert 5 <= figures.p50_ms <= 10 and figures.requests == 41  # type: ignore[operator]
    assert figures.batch_mean == 4.0 and figures.queue_depth == 2

    book.give_back(taken)  # a save that failed: the same points come back next time
    again = book.take_unsaved()
    assert [p.requests for p in again[("e", "v1")].points] == [10, 20, 11]
    assert [p.requests for p in again[("e", "v2")].points] == [5]
    book.give_back(again)
    book.forget("e")  # deleted: nothing is left to save
    assert book.take_unsaved() == {}


def test_default_history_step_keeps_a_read_to_720_points() -> None:
    assert endpoint_history.default_step(3600) == 60
    assert endpoint_history.default_step(12 * 3600) == 60
    assert endpoint_history.default_step(7 * 86400) == 840
    assert endpoint_history.default_step(7 * 86400) * 720 >= 7 * 86400
