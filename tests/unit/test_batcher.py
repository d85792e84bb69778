"""Dynamic batching: the pure plan, then the asyncio batcher around a real model callable."""

import asyncio
import math
import threading
from dataclasses import dataclass

import numpy as np
import pytest

from naiad.serving.batcher import Batcher, ModelError, Plan, QueueFull, plan


@dataclass
class Req:
    rows: int
    arrived: float


def queue(*rows: int, start: float = 0.0, gap: float = 0.001) -> list[Req]:
    return [Req(r, start + i * gap) for i, r in enumerate(rows)]


# -- the pure function -----------------------------------------------------------------


def test_an_empty_queue_waits_for_a_request() -> None:
    assert plan([], max_batch=8, max_delay=0.005, now=1.0) == Plan(0, None)


def test_a_full_batch_runs_at_once() -> None:
    pending = queue(4, 4, 1)
    assert plan(pending, max_batch=8, max_delay=10.0, now=0.0) == Plan(2)


def test_a_batch_runs_when_the_next_request_would_not_fit() -> None:
    # 3 + 4 = 7 rows; the third (2 rows) would make 9 > 8: run the first two, never split.
    pending = queue(3, 4, 2)
    assert plan(pending, max_batch=8, max_delay=10.0, now=0.0) == Plan(2)


def test_a_request_larger_than_max_batch_runs_alone() -> None:
    assert plan(queue(20, 1), max_batch=8, max_delay=10.0, now=0.0) == Plan(1)
    # ... and one behind a smaller request waits for its own turn (FIFO, no reordering).
    assert plan(queue(1, 20), max_batch=8, max_delay=10.0, now=0.0) == Plan(1)


def test_a_partial_batch_waits_until_its_oldest_request_reached_max_delay() -> None:
    pending = queue(1, 1, start=1.0)  # arrived at 1.000 and 1.001
    waiting = plan(pending, max_batch=8, max_delay=0.005, now=1.002, last_look=1.0005)
    assert waiting.take == 0
    assert waiting.wait == pytest.approx(0.003)
    assert plan(pending, max_batch=8, max_delay=0.005, now=1.0051) == Plan(2)


def test_a_partial_batch_runs_once_nothing_arrived_since_the_last_look() -> None:
    pending = queue(1, 1, start=1.0)
    # The newest request came after the previous look: others may be on their way.
    assert plan(pending, 8, max_delay=0.005, now=1.002, last_look=1.0005).take == 0
    # Nothing new since the previous look: every received request is in; run them.
    assert plan(pending, 8, max_delay=0.005, now=1.002, last_look=1.0015) == Plan(2)


def test_max_delay_zero_runs_whatever_is_queued() -> None:
    assert plan(queue(1, 2, 3), max_batch=64, max_delay=0.0, now=0.0) == Plan(3)


def test_take_is_a_fifo_prefix_whatever_the_sizes() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        rows = [int(r) for r in rng.integers(1, 12, size=rng.integers(1, 10))]
        decision = plan(queue(*rows), max_batch=16, max_delay=0.0, now=math.inf)
        taken = rows[: decision.take]
        assert decision.take >= 1
        assert sum(taken) <= 16 or decision.take == 1  # never over, unless alone
        if decision.take < len(rows):  # stopped only because the next did not fit
            assert sum(taken) + rows[decision.take] > 16


# -- the asyncio batcher ---------------------------------------------------------------


def double(batch: np.ndarray) -> np.ndarray:
    return batch * 2


async def started(batcher: Batcher) -> Batcher:
    batcher.start()
    return batcher


def test_each_request_gets_its_own_rows_under_concurrency() -> None:
    batches: list[tuple[int, int]] = []

    async def main() -> None:
        batcher = await started(
            Batcher(
                double,
                max_batch=16,
                max_delay=0.002,
                on_batch=lambda r, n, s: batches.append((r, n)),
            )
        )
        rng = np.random.default_rng(1)
        inputs = [rng.random((int(rng.integers(1, 5)), 3)).astype(np.float32) for _ in range(200)]

        async def one(x: np.ndarray) -> None:
            await asyncio.sleep(float(rng.random()) * 0.003)
            out = await batcher.submit(x)
            np.testing.assert_array_equal(out, x * 2)

        await asyncio.gather(*(one(x) for x in inputs))
        await batcher.close()

    asyncio.run(main())
    assert sum(n for _, n in batches) == 200
    assert max(r for r, _ in batches) <= 16
    assert max(n for _, n in batches) > 1, "concurrent requests should share batches"


def test_inference_runs_off_the_event_loop() -> None:
    threads: set[str] = set()

    def infer(batch: np.ndarray) -> np.ndarray:
        threads.add(threading.current_thread().name)
        return batch

    async def main() -> None:
        batcher = await started(Batcher(infer))
        await batcher.submit(np.ones((1, 2), np.float32))
        await batcher.close()

    asyncio.run(main())
    assert threads and threading.main_thread().name not in threads


def test_every_batch_runs_in_inference_mode_on_a_one_thread_torch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The replica's model thread holds inference mode for its life, not per batch: a
    context entered and dropped at once would leave every batch paying to enter it."""
    torch = pytest.importorskip("torch")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # set_threads exports it
    from naiad.serving.loader import model_thread_context

    seen: list[tuple[bool, int]] = []

    def infer(batch: np.ndarray) -> np.ndarray:
        seen.append((torch.is_inference_mode_enabled(), torch.get_num_threads()))
        return batch

    async def main() -> None:
        batcher = await started(Batcher(infer, thread_context=lambda: model_thread_context(1)))
        for _ in range(3):
            await batcher.submit(np.ones((1, 2), np.float32))
        await batcher.close()

    before = torch.get_num_threads()
    asyncio.run(main())
    assert seen == [(True, 1)] * 3
    assert not torch.is_inference_mode_enabled()  # the loop's thread is left as it was
    torch.set_num_threads(before)


def test_a_model_returning_the_wrong_row_count_fails_the_whole_batch() -> None:
    def drops_a_row(batch: np.ndarray) -> np.ndarray:
        return batch[:-1]

    async def main() -> list[BaseException | np.ndarray]:
        batcher = await started(Batcher(drops_a_row, max_batch=8, max_delay=0.05))
        futures = [batcher.submit(np.ones((2, 3), np.float32)) for _ in range(3)]
        results = await asyncio.gather(*futures, return_exceptions=True)
        await batcher.close()
        return results

    results = asyncio.run(main())
    assert all(isinstance(r, ModelError) for r in results)
    message = str(results[0])
    assert "returned 5 rows for a batch of 6 rows (3 requests)" in message
    assert "one output row per input row" in message


def test_a_failing_request_does_not_fail_the_others_in_its_batch() -> None:
    def refuses_negatives(batch: np.ndarray) -> np.ndarray:
        if (batch < 0).any():
            raise ValueError("negative values are not allowed")
        return batch

    async def main() -> list[BaseException | np.ndarray]:
        batcher = await started(Batcher(refuses_negatives, max_batch=8, max_delay=0.05))
        futures = [batcher.submit(np.full((1, 2), v, np.float32)) for v in (1, -1, 2)]
        results = await asyncio.gather(*futures, return_exceptions=True)
        await batcher.close()
        return results

    good, bad, other = asyncio.run(main())
    np.testing.assert_array_equal(good, [[1, 1]])
    np.testing.assert_array_equal(other, [[2, 2]])
    assert isinstance(bad, ModelError) and bad.status_code == 422
    assert str(bad) == "The model failed on this input: negative values are not allowed."


def test_a_full_queue_refuses_at_once() -> None:
    release = threading.Event()

    def blocked(batch: np.ndarray) -> np.ndarray:
        release.wait(5)
        return batch

    async def main() -> None:
        batcher = await started(Batcher(blocked, max_batch=1, max_delay=0.0, queue_size=2))
        first = batcher.submit(np.ones((1, 1), np.float32))
        await asyncio.sleep(0.05)  # the worker took it: the model is busy, the queue empty
        queued = [batcher.submit(np.ones((1, 1), np.float32)) for _ in range(2)]
        assert batcher.depth == 2
        with pytest.raises(QueueFull) as refused:
            batcher.submit(np.ones((1, 1), np.float32))
        assert refused.value.status_code == 503
        release.set()
        await asyncio.gather(first, *queued)
        await batcher.close()

    asyncio.run(main())


def test_requests_of_different_example_shapes_are_run_apart() -> None:
    shapes: list[tuple[int, ...]] = []

    def record(batch: np.ndarray) -> np.ndarray:
        shapes.append(batch.shape)
        return batch.sum(axis=1, keepdims=True)

    async def main() -> list[np.ndarray]:
        batcher = await started(Batcher(record, max_batch=16, max_delay=0.05))
        inputs = [np.ones((1, 3)), np.ones((1, 3)), np.ones((2, 5)), np.ones((1, 3))]
        results = await asyncio.gather(*(batcher.submit(x) for x in inputs))
        await batcher.close()
        return results

    results = asyncio.run(main())
    assert [r.ravel().tolist() for r in results] == [[3.0], [3.0], [5.0, 5.0], [3.0]]
    assert sorted(shapes) == [(1, 3), (2, 3), (2, 5)]
