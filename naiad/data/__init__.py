"""Tabular data where it lives: Parquet/CSV datasets, SQL queries and DynamoDB tables,
read as Arrow record batches (``sources``). The supervisor materialises a channel with
it before the script starts (``materialise``); ``naiad.runtime.stream`` reads one from
inside the job. Importing this package imports no pyarrow: only its modules do."""

from collections.abc import Mapping
from typing import Any

STREAM_FILE = "naiad-channel.json"  # a streamed channel's directory holds this alone
DATA_TAG = "naiad.data."  # a run's tag per table channel: what it held (see materialise)


def is_table(uri: str, options: "Mapping[str, Any]") -> bool:
    """Whether a channel is read as a table (rows), not copied as files."""
    return uri.startswith(("sql://", "dynamodb://")) or bool(options.get("format"))


def connection_name(uri: str, options: "Mapping[str, Any]") -> str | None:
    """The named connection a channel reads through: ``sql://NAME``, or its ``connection``."""
    if uri.startswith("sql://"):
        return uri[len("sql://") :].strip("/") or None
    return options.get("connection") or None
