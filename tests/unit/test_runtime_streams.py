"""runtime.stream and runtime.table on a materialised channel, in this process: the
shapes a training loop gets, worker and rank shards, and a reshuffle per epoch."""

from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from torch.utils.data import DataLoader

from naiad.runtime import streams
from naiad.runtime.context import context
from naiad.runtime.datasets import load_labelled
from naiad.testing.tables import digits_table


@pytest.fixture
def channel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "input" / "data" / "train"
    data.mkdir(parents=True)
    pq.write_table(digits_table(), data / "part-00000.parquet", row_group_size=500)
    monkeypatch.setenv("SM_CHANNELS", '["train"]')
    monkeypatch.setenv("SM_CHANNEL_TRAIN", str(data))
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    context.cache_clear()
    yield data
    context.cache_clear()


def test_label_mode_gives_float_features_and_the_label(channel: Path) -> None:
    rows = streams.stream("train", label="label", features=["p10", "p20"])
    x, y = next(iter(rows))
    assert x.dtype == torch.float32 and x.shape == (2,) and y.dtype == torch.int64
    batch_x, batch_y = next(iter(DataLoader(rows, batch_size=16)))
    assert batch_x.shape == (16, 2) and batch_y.shape == (16,)
    assert streams.table("train", columns=["id", "label"]).num_rows == 1797
    x_all, y_all = load_labelled(channel)  # the evaluation jobs' reader takes Parquet too
    assert x_all.shape == (1797, 65) and y_all.shape == (1797,)


def test_workers_and_ranks_split_the_rows_and_epochs_reshuffle(
    channel: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    orders = {}
    for rank in (0, 1, 2):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "3")
        context.cache_clear()  # a process has one rank: this test plays three
        rows = streams.stream("train", shuffle_buffer=100, seed=7)
        loader = DataLoader(rows, batch_size=50, num_workers=2, collate_fn=lambda b: b)
        ids = [r["id"] for batch in loader for r in batch]
        rows.set_epoch(1)
        again = [r["id"] for batch in loader for r in batch]
        assert sorted(ids) == sorted(again) and ids != again
        orders[rank] = ids
        seen += ids
    assert sorted(seen) == list(range(1797))  # 3 ranks x 2 workers: each row once
    assert max(map(len, orders.values())) - min(map(len, orders.values())) <= 2


def test_bad_label_or_features_name_the_columns(channel: Path) -> None:
    with pytest.raises(ValueError, match="label 'y' is not a column"):
        streams.stream("train", label="y")
    with pytest.raises(ValueError, match="features \\['q'\\] are not columns"):
        streams.stream("train", features=["q"])
