"""A table channel written to Parquet files before the script starts (SageMaker's File
mode), or described for reading on demand (FastFile), and what the run records of it.

The fingerprint of a materialised channel is a sha256 of its rows, in fixed-size Arrow
batches, so the same rows give the same fingerprint whatever batches the source read
them in. A streamed channel is not read ahead: its fingerprint is of what names its
content (the files with their sizes and times, the query, the table).
"""

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from naiad.data import STREAM_FILE
from naiad.data.sources import TableSource, rebatch

ROWS_PER_FILE = 1_000_000

PROGRESS_EVERY_S = 5.0


@dataclass(frozen=True)
class ChannelRecord:
    """What a run keeps of one channel: where its data came from, how much, and which."""

    source: str
    mode: str  # File: materialised; FastFile: streamed
    rows: int
    columns: list[str]
    fingerprint: str
    files: int = 0
    bytes: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


def materialise(
    source: TableSource,
    dest: Path,
    shard: int = 0,
    shards: int = 1,
    progress: Callable[[int], None] | None = None,
) -> ChannelRecord:
    """Write the shard's rows into ``dest/part-NNNNN.parquet``; returns the record."""
    import pyarrow.parquet as pq

    dest.mkdir(parents=True, exist_ok=True)
    schema = source.schema()
    digest = hashlib.sha256(schema.serialize().to_pybytes())
    rows = files = 0
    writer: pq.ParquetWriter | None = None
    said = time.monotonic()
    try:
        for batch in rebatch(source.batches(shard, shards)):
            if writer is None or rows >= (files * ROWS_PER_FILE):
                if writer is not None:
                    writer.close()
                writer = pq.ParquetWriter(dest / f"part-{files:05d}.parquet", batch.schema)
                files += 1
            writer.write_batch(batch)
            digest.update(batch.serialize().to_pybytes())
            rows += batch.num_rows
            if progress is not None and time.monotonic() - said >= PROGRESS_EVERY_S:
                progress(rows)
                said = time.monotonic()
    finally:
        if writer is not None:
            writer.close()
    if writer is None:  # no rows: still a valid, empty file, so readers find the columns
        pq.write_table(schema.empty_table(), dest / "part-00000.parquet")
        files = 1
    size = sum(p.stat().st_size for p in dest.glob("part-*.parquet"))
    return ChannelRecord(
        source=source.describe(),
        mode="File",
        rows=rows,
        columns=list(schema.names),
        fingerprint=f"sha256:{digest.hexdigest()}",
        files=files,
        bytes=size,
    )


def describe_stream(source: TableSource, dest: Path, opened: dict[str, Any]) -> ChannelRecord:
    """Check the source (its columns, its row count) and leave ``dest/naiad-channel.json``,
    which says how to open it again from the job (``opened``: URI, options, connection
    name, S3 endpoint; never credentials)."""
    schema = source.schema()
    rows = source.count_rows()
    dest.mkdir(parents=True, exist_ok=True)
    (dest / STREAM_FILE).write_text(json.dumps(opened, indent=2))
    identity = json.dumps(source.identity(), sort_keys=True, default=str)
    return ChannelRecord(
        source=source.describe(),
        mode="FastFile",
        rows=rows,
        columns=list(schema.names),
        fingerprint=f"sha256:{hashlib.sha256(identity.encode()).hexdigest()}",
    )


def read_table(directory: Path) -> pa.Table:
    """A materialised channel's rows, all of them."""
    import pyarrow.parquet as pq

    return pa.concat_tables([pq.read_table(p) for p in sorted(directory.glob("part-*.parquet"))])
