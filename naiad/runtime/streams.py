"""Table channels inside the job: all the rows (``table``), or a stream of them sharded
over the job's processes (``stream``).

``stream`` is a ``torch.utils.data.IterableDataset``. Each DataLoader worker of each
rank reads its own shard of the source in record batches (rank r's worker w of W is
shard ``r * W + w`` of ``world_size * W``), so across a multi-process job every row is
seen exactly once per epoch; rows are shuffled within a buffer, seeded by the seed,
the epoch (``set_epoch``) and the shard. It reads a channel the supervisor
materialised (File mode: Parquet files) or one left at its source (FastFile:
``naiad-channel.json``; credentials are fetched from the server with the job's token).

    train = runtime.stream("train", label="label", shuffle_buffer=4096, seed=0)
    loader = DataLoader(train, batch_size=64, num_workers=2)
    for epoch in range(epochs):
        train.set_epoch(epoch)
        for x, y in loader: ...
"""

import json
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from torch.utils.data import IterableDataset, get_worker_info

from naiad.data import STREAM_FILE
from naiad.data.materialise import read_table
from naiad.data.sources import TableOptions, TableSource, open_source
from naiad.runtime.context import context


def source_of(directory: Path) -> TableSource:
    """The table a channel directory stands for: its own Parquet files, or the source
    its ``naiad-channel.json`` names."""
    spec_file = directory / STREAM_FILE
    if not spec_file.is_file():
        return open_source(str(directory), TableOptions(format="parquet"))
    opened = json.loads(spec_file.read_text())
    credentials = None
    if opened.get("connection"):
        from naiad.sdk.client import Client

        with Client() as client:
            credentials = client.connections.credentials(opened["connection"]).model_dump()
    options = TableOptions.of(opened.get("options") or {})
    source = open_source(opened["uri"], options, credentials, opened.get("s3_endpoint_url"))
    source.uri = opened.get("shown") or opened["uri"]
    return source


def table(channel: str, columns: Sequence[str] | None = None) -> pa.Table:
    """Every row of a table channel (materialised or streamed), as one Arrow table."""
    directory = context().channel(channel)
    if not (directory / STREAM_FILE).is_file():
        found = read_table(directory)
        return found.select(list(columns)) if columns else found
    batches = list(source_of(directory).batches())
    source_table = pa.Table.from_batches(batches) if batches else pa.table({})
    return source_table.select(list(columns)) if columns else source_table


class ChannelStream(IterableDataset[Any]):
    """A table channel's rows for this rank and DataLoader worker; see the module."""

    def __init__(
        self,
        directory: Path,
        label: str | None = None,
        features: Sequence[str] | None = None,
        shuffle_buffer: int = 0,
        seed: int = 0,
        shard: bool = True,
    ) -> None:
        self.directory = directory
        self.label, self.features = label, list(features) if features else None
        self.shuffle_buffer, self.seed, self.shard = shuffle_buffer, seed, shard
        self.epoch = 0
        self.columns = list(source_of(directory).schema().names)  # checks it now
        if label is not None and label not in self.columns:
            raise ValueError(f"label {label!r} is not a column; the channel has {self.columns}")
        missing = sorted(set(self.features or ()) - set(self.columns))
        if missing:
            raise ValueError(f"features {missing} are not columns; the channel has {self.columns}")

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle for this epoch (call it before iterating, as DistributedSampler's)."""
        self.epoch = epoch

    def shard_of_this_process(self) -> tuple[int, int]:
        """(shard, shards): this rank's DataLoader worker among every worker of the job."""
        ctx = context()
        rank, world = ctx.rank, ctx.world_size
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        if not self.shard:
            return worker, workers
        return rank * workers + worker, world * workers

    def _samples(self, batch: pa.RecordBatch) -> Iterator[Any]:
        if self.label is None and self.features is None:
            yield from batch.to_pylist()
            return
        names = self.features or [c for c in batch.schema.names if c != self.label]
        x = np.column_stack([batch.column(n).to_numpy(zero_copy_only=False) for n in names]).astype(
            np.float32
        )
        if self.label is None:
            yield from (torch.from_numpy(row) for row in x)
            return
        y = batch.column(self.label).to_numpy(zero_copy_only=False)
        for i in range(batch.num_rows):
            yield torch.from_numpy(x[i]), torch.as_tensor(y[i])

    def __iter__(self) -> Iterator[Any]:
        shard, shards = self.shard_of_this_process()
        source = source_of(self.directory)
        samples = (s for b in source.batches(shard, shards) for s in self._samples(b))
        if self.shuffle_buffer <= 1:
            yield from samples
            return
        rng = random.Random(self.seed * 1_000_003 + self.epoch * 10_007 + shard)
        buffer: list[Any] = []
        for sample in samples:
            if len(buffer) < self.shuffle_buffer:
                buffer.append(sample)
                continue
            i = rng.randrange(len(buffer))
            buffer[i], sample = sample, buffer[i]
            yield sample
        rng.shuffle(buffer)
        yield from buffer


def stream(
    channel: str,
    label: str | None = None,
    features: Sequence[str] | None = None,
    shuffle_buffer: int = 0,
    seed: int = 0,
    shard: bool = True,
) -> ChannelStream:
    """A table channel as an IterableDataset of this process's share of the rows.

    ``label``: yield ``(features, label)`` tensors, the features being ``features`` or
    every other column (as float32); neither: yield each row as a dict. ``shard=False``:
    every rank reads every row (DataLoader workers still split them).
    """
    return ChannelStream(context().channel(channel), label, features, shuffle_buffer, seed, shard)
