"""Table channels (Parquet/CSV datasets, SQL queries, DynamoDB tables) before the script.

In File mode the rows are written to Parquet files in ``input/data/<channel>`` (each
host its share of a ShardedByS3Key channel); in FastFile mode the source is only
checked and counted, and the directory holds ``naiad-channel.json``, from which
``naiad.runtime.stream`` opens it in the job. Either way a missing table, a bad query,
an unreachable store or refused credentials fail the job here, naming the source, and
the run gets a ``naiad.data.<channel>`` tag: source, mode, rows, fingerprint.

Credentials never pass through the job's spec: the supervisor fetches the named
connection from the server with the job's token, as the job's processes do.
"""

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from naiad.core.units import human_bytes
from naiad.data import DATA_TAG, connection_name
from naiad.data.materialise import ChannelRecord, describe_stream, materialise
from naiad.data.sources import DataSourceError, TableOptions, open_source
from naiad.executors.base import LaunchSpec
from naiad.store.artifacts import safe_path
from naiad.store.artifacts.local import root_from_uri

Log = Callable[[str], None]


class TableStagingError(Exception):
    """The channel's source cannot be read; the message names it."""


def fetch_credentials(spec: LaunchSpec, channel: str, name: str) -> dict[str, Any]:
    """The named connection, whole, from the server (the job's token reads it)."""
    from naiad.core.errors import NaiadError, NotFound
    from naiad.sdk.http import Transport

    if not spec.server_url:
        raise TableStagingError(
            f"Input channel {channel!r}: no server to read connection {name!r} from."
        )
    transport = Transport(spec.server_url, spec.token, 30.0)
    try:
        return dict(transport.request("GET", f"/connections/{name}/credentials"))
    except NotFound:
        raise TableStagingError(
            f"Input channel {channel!r}: the server has no connection named {name!r}; "
            "create it with `naiad connections create`."
        ) from None
    except NaiadError as exc:
        raise TableStagingError(
            f"Input channel {channel!r}: could not read connection {name!r}: {exc.message}"
        ) from None
    finally:
        transport.http.close()


def resolved_uri(uri: str, spec: LaunchSpec) -> str:
    """A path in the server's store as the URI its files have (a local path or s3://)."""
    if "://" in uri or uri.startswith("/"):
        return uri
    root = spec.artifact_root
    if root.startswith("s3://"):
        return f"{root.rstrip('/')}/{safe_path(uri)}"
    return str(root_from_uri(root) / safe_path(uri))


def stage_table(
    name: str,
    uri: str,
    options: Mapping[str, Any],
    dests: Sequence[Path | None],
    shared: Path,
    spec: LaunchSpec,
    log: Log,
    first_shard: int = 0,
    shards: int | None = None,
) -> ChannelRecord:
    """Stage a table channel into every ``dests`` (None: a host staged elsewhere).

    ShardedByS3Key: ``dests[i]`` gets shard ``first_shard + i`` of ``shards`` (default
    ``len(dests)``); else every host gets all the rows, written once under ``shared``.
    """
    source_uri = resolved_uri(uri, spec)
    table = TableOptions.of(options)
    conn = connection_name(uri, options)
    credentials = fetch_credentials(spec, name, conn) if conn else None
    try:
        source = open_source(source_uri, table, credentials, spec.s3_endpoint_url)
        source.uri = uri  # as the user named it, in logs and lineage
        if options.get("input_mode") == "FastFile":
            return _describe(name, uri, options, source, dests, spec, log)
        sharded = options.get("distribution") == "ShardedByS3Key"
        if sharded:
            total = shards or len(dests)
            records = [
                _write(name, source, dest, first_shard + i, total, log)
                for i, dest in enumerate(dests)
                if dest is not None
            ]
            return _combined(records, total)
        here = [d for d in dests if d is not None]
        if len(here) == 1:
            return _write(name, source, here[0], 0, 1, log)
        record = _write(name, source, shared / name, 0, 1, log)
        for dest in here:
            dest.symlink_to(shared / name, target_is_directory=True)
        log(f"channel {name}: the same rows on all {len(here)} hosts")
        return record
    except DataSourceError as exc:
        raise TableStagingError(f"Input channel {name!r}: {exc.message}") from None


def _write(name: str, source: Any, dest: Path, shard: int, shards: int, log: Log) -> ChannelRecord:
    part = f" (shard {shard + 1} of {shards})" if shards > 1 else ""
    log(f"staging channel {name}: reading {source.uri}{part}")

    def progress(rows: int) -> None:
        log(f"staging channel {name}: {rows:,} rows so far")

    record = materialise(source, dest, shard, shards, progress)
    log(
        f"staging channel {name}: {record.rows:,} rows x {len(record.columns)} columns{part} "
        f"from {source.uri}, {record.files} Parquet file{'s' if record.files != 1 else ''}, "
        f"{human_bytes(record.bytes)} ({record.fingerprint[:19]})"
    )
    return record


def _combined(records: list[ChannelRecord], shards: int) -> ChannelRecord:
    if len(records) == 1 and shards == 1:
        return records[0]
    first = records[0]
    return ChannelRecord(
        source=f"{first.source} ({len(records)} of {shards} shards here)",
        mode=first.mode,
        rows=sum(r.rows for r in records),
        columns=first.columns,
        fingerprint="sha256:" + _hash("".join(r.fingerprint for r in records)),
        files=sum(r.files for r in records),
        bytes=sum(r.bytes for r in records),
    )


def _hash(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def _describe(
    name: str,
    uri: str,
    options: Mapping[str, Any],
    source: Any,
    dests: Sequence[Path | None],
    spec: LaunchSpec,
    log: Log,
) -> ChannelRecord:
    opened = {
        "uri": resolved_uri(uri, spec),
        "shown": uri,
        "options": {k: options.get(k) for k in ("format", "columns", "filter", "query")},
        "connection": connection_name(uri, options),
        "s3_endpoint_url": spec.s3_endpoint_url,
    }
    record = None
    for dest in dests:
        if dest is not None:
            record = describe_stream(source, dest, opened)
    assert record is not None
    log(
        f"channel {name}: streamed in the job (FastFile) from {uri}: {record.rows:,} rows x "
        f"{len(record.columns)} columns"
    )
    return record


def record_tags(records: Mapping[str, ChannelRecord]) -> dict[str, str]:
    """The run's tags for its table channels (``naiad.data.<channel>``: the record)."""
    tags = {}
    for name, record in records.items():
        value = record.to_json()
        if len(value) > 7000:  # a very wide table: its columns counted, not listed
            data = json.loads(value)
            data["columns"] = [*data["columns"][:50], f"... {len(record.columns)} in all"]
            value = json.dumps(data, separators=(",", ":"))
        tags[f"{DATA_TAG}{name}"] = value
    return tags


def send_tags(spec: LaunchSpec, records: Mapping[str, ChannelRecord], log: Log) -> None:
    """Put the records on the job's run; a server that cannot take them now only costs
    the lineage, never the job."""
    if not records or not spec.server_url:
        return
    from naiad.core.errors import NaiadError
    from naiad.sdk.http import Transport

    transport = Transport(spec.server_url, spec.token, 10.0)
    try:
        transport.request("POST", f"/runs/{spec.run_id}/tags", json={"tags": record_tags(records)})
    except NaiadError as exc:
        log(f"could not record the channels' lineage on the run: {exc.message}")
    finally:
        transport.http.close()
