"""Tabular sources read as Arrow record batches, whole or one shard's rows.

Three kinds, by URI:

- a Parquet or CSV dataset (a local directory or file, ``file://``, ``s3://``): read with
  ``pyarrow.dataset``, Hive-style partitions, the columns and the row filter pushed down
  to the files (Parquet statistics skip whole row groups);
- ``sql://CONNECTION``: a query against the database a named connection reaches
  (SQLAlchemy; read-only on PostgreSQL, rows streamed with a server-side cursor);
- ``dynamodb://TABLE``: a scan (boto3, any endpoint URL), sharded with DynamoDB's own
  parallel scan segments.

A shard is a fixed share of the rows: every shard of a split sees disjoint rows, and
all the shards together see every row once. Files and queries are dealt row by row in
a fixed order (row i goes to shard i mod N), so shares differ by at most one row;
DynamoDB deals by segment, as its parallel scan does.
"""

import contextlib
import decimal
import re
from abc import ABC, abstractmethod
from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from naiad.core.errors import NaiadError

BATCH_ROWS = 8192
_OPS = ("=", "==", "!=", "<", "<=", ">", ">=", "in", "not in")


class DataSourceError(NaiadError):
    """A channel's source cannot be read: missing, unreachable, refused, or a bad query."""

    code = "data_source_error"


@dataclass(frozen=True)
class TableOptions:
    """What of a source to read: the file format, the columns and a row filter (pyarrow's
    DNF: ``[[col, op, value], ...]`` ANDed, or a list of those ORed), a SQL query, and the
    named connection that holds the credentials."""

    format: str | None = None
    columns: tuple[str, ...] | None = None
    filter: Any = None
    query: str | None = None
    connection: str | None = None

    @classmethod
    def of(cls, options: Mapping[str, Any]) -> "TableOptions":
        columns = options.get("columns")
        return cls(
            format=options.get("format"),
            columns=None if columns is None else tuple(columns),
            filter=options.get("filter"),
            query=options.get("query"),
            connection=options.get("connection"),
        )


def filter_expression(dnf: Any) -> Any:
    """pyarrow's expression for a DNF filter; DataSourceError says what is malformed."""
    import pyarrow.parquet as pq

    if not dnf:
        return None
    conjunctions = dnf if isinstance(dnf[0][0], list | tuple) else [dnf]
    for terms in conjunctions:
        for term in terms:
            if len(term) != 3 or not isinstance(term[0], str) or term[1] not in _OPS:
                raise DataSourceError(
                    f"The filter term {term!r} is not [column, op, value] with op one of "
                    f"{', '.join(_OPS)}."
                )
    try:
        return pq.filters_to_expression([[tuple(t) for t in terms] for terms in conjunctions])
    except (TypeError, ValueError, pa.ArrowException) as exc:
        raise DataSourceError(f"The filter {dnf!r} is not valid: {exc}") from None


def _filter_columns(dnf: Any) -> set[str]:
    if not dnf:
        return set()
    conjunctions = dnf if isinstance(dnf[0][0], list | tuple) else [dnf]
    return {term[0] for terms in conjunctions for term in terms}


def stride(batches: Iterator[pa.RecordBatch], shard: int, shards: int) -> Iterator[pa.RecordBatch]:
    """The rows ``shard, shard + shards, ...`` of a stream of batches."""
    if shards == 1:
        yield from batches
        return
    offset = 0
    for batch in batches:
        start = (shard - offset) % shards
        if start < batch.num_rows:
            yield batch.take(pa.array(range(start, batch.num_rows, shards), type=pa.int64()))
        offset += batch.num_rows


def rebatch(batches: Iterator[pa.RecordBatch], rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """The same rows in batches of exactly ``rows`` (the last may be shorter), whatever
    sizes the source gave: a fingerprint of them then depends on the data alone."""
    pending: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        while batch.num_rows:
            take = min(rows - count, batch.num_rows)
            pending.append(batch.slice(0, take))
            batch, count = batch.slice(take), count + take
            if count == rows:
                yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]
                pending, count = [], 0
    if count:
        yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]


class TableSource(ABC):
    """One channel's rows, opened but not yet read."""

    uri: str

    @abstractmethod
    def schema(self) -> pa.Schema:
        """The columns read; reaching the source this way is what checks it before training."""

    @abstractmethod
    def count_rows(self) -> int:
        """How many rows the source gives with its filter."""

    @abstractmethod
    def batches(self, shard: int = 0, shards: int = 1) -> Iterator[pa.RecordBatch]:
        """The shard's rows, in batches of about ``BATCH_ROWS``."""

    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """What names this content without reading it (files and their sizes, a query):
        what a streamed channel's fingerprint is taken of."""

    def describe(self) -> str:
        return self.uri


def _check_columns(uri: str, schema: pa.Schema, wanted: set[str], what: str) -> None:
    missing = sorted(wanted - set(schema.names))
    if missing:
        raise DataSourceError(
            f"{uri}: {what} {', '.join(map(repr, missing))} not in the data; it has "
            f"{', '.join(schema.names[:30])}{' ...' if len(schema.names) > 30 else ''}."
        )


class FileTable(TableSource):
    """A Parquet or CSV dataset: a file, or a directory of them with Hive partitions."""

    def __init__(self, uri: str, options: TableOptions, s3_endpoint_url: str | None) -> None:
        import pyarrow.dataset as ds

        self.uri, self.options = uri, options
        fmt = options.format or "parquet"
        if fmt not in ("parquet", "csv"):
            raise DataSourceError(f"{uri}: format {fmt!r} is not one of parquet, csv.")
        filesystem, path = _filesystem(uri, s3_endpoint_url)
        try:
            found = ds.dataset(path, filesystem=filesystem, format=fmt, partitioning="hive")
            files = sorted(found.files)
            if not files:
                raise DataSourceError(f"{uri}: no {fmt} files there.")
            base = path if filesystem.get_file_info(path).type.name == "Directory" else None
            self.dataset = ds.dataset(
                files,
                filesystem=filesystem,
                format=fmt,
                partitioning="hive" if base else None,
                partition_base_dir=base,
            )
            self.infos = filesystem.get_file_info(files)
        except DataSourceError:
            raise
        except FileNotFoundError:
            raise DataSourceError(f"{uri}: nothing found there.") from None
        except (OSError, pa.ArrowException) as exc:
            raise DataSourceError(f"{uri}: could not read the dataset: {_line(exc)}") from None
        self.expression = filter_expression(options.filter)
        full = self.dataset.schema
        _check_columns(uri, full, set(options.columns or ()), "columns")
        _check_columns(uri, full, _filter_columns(options.filter), "the filter's columns")

    def schema(self) -> pa.Schema:
        full = self.dataset.schema
        if self.options.columns is None:
            return full
        return pa.schema([full.field(name) for name in self.options.columns])

    def count_rows(self) -> int:
        try:
            return int(self.dataset.count_rows(filter=self.expression))
        except (OSError, pa.ArrowException) as exc:
            raise DataSourceError(f"{self.uri}: could not count rows: {_line(exc)}") from None

    def batches(self, shard: int = 0, shards: int = 1) -> Iterator[pa.RecordBatch]:
        columns = list(self.options.columns) if self.options.columns else None
        scanner = self.dataset.scanner(
            columns=columns, filter=self.expression, batch_size=BATCH_ROWS, use_threads=True
        )
        try:
            # to_reader keeps the files' order, so every shard deals the same sequence
            yield from stride(iter(scanner.to_reader()), shard, shards)
        except (OSError, pa.ArrowException) as exc:
            raise DataSourceError(f"{self.uri}: could not read: {_line(exc)}") from None

    def identity(self) -> dict[str, Any]:
        files = [[i.path, i.size, i.mtime_ns] for i in self.infos]
        return {"files": files, "columns": self.options.columns, "filter": self.options.filter}


def _filesystem(uri: str, s3_endpoint_url: str | None) -> tuple[Any, str]:
    import pyarrow.fs as pafs

    if uri.startswith("s3://"):
        import boto3

        region = boto3.session.Session().region_name or "us-east-1"
        fs = pafs.S3FileSystem(
            endpoint_override=s3_endpoint_url,
            region=region,
            connect_timeout=5,
            request_timeout=30,
            retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=3),
        )
        return fs, uri.removeprefix("s3://").rstrip("/")
    path = uri.removeprefix("file://") if uri.startswith("file://") else uri
    return pafs.LocalFileSystem(), path


def _line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def _redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


class SqlTable(TableSource):
    """The rows of a query, through SQLAlchemy, read-only, streamed from the server."""

    def __init__(self, uri: str, options: TableOptions, credentials: Mapping[str, Any]) -> None:
        import sqlalchemy
        from sqlalchemy.engine import make_url

        self.uri = uri
        if not options.query:
            raise DataSourceError(f"{uri}: give the query to run (the channel's 'query').")
        self.query = options.query.strip().rstrip(";").strip()
        url = str(credentials.get("url") or "")
        try:
            parsed = make_url(url)
        except (sqlalchemy.exc.ArgumentError, ValueError):
            raise DataSourceError(f"{uri}: the connection's URL is not a database URL.") from None
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        self.secrets = [str(parsed.password or "")]
        connect = {"connect_timeout": 10} if parsed.drivername.startswith("postgresql") else {}
        try:
            self.engine = sqlalchemy.create_engine(
                parsed, poolclass=sqlalchemy.pool.NullPool, connect_args=connect
            )
        except Exception as exc:  # a missing driver, a malformed option
            raise DataSourceError(f"{uri}: cannot use this database: {_line(exc)}") from None
        self._schema: pa.Schema | None = None

    @contextlib.contextmanager
    def _rows(self, sql: str) -> Iterator[Any]:
        import sqlalchemy

        try:
            with self.engine.connect() as conn:
                conn = conn.execution_options(
                    stream_results=True, yield_per=BATCH_ROWS, postgresql_readonly=True
                )
                yield conn.execute(sqlalchemy.text(sql))
        except sqlalchemy.exc.DBAPIError as exc:
            what = "could not connect" if exc.connection_invalidated else "the query failed"
            if isinstance(exc, sqlalchemy.exc.OperationalError):
                what = "could not connect or run the query"
            message = _redact(_line(exc.orig or exc), self.secrets)
            raise DataSourceError(f"{self.uri}: {what}: {message}") from None
        except sqlalchemy.exc.SQLAlchemyError as exc:
            message = _redact(_line(exc), self.secrets)
            raise DataSourceError(f"{self.uri}: the query failed: {message}") from None

    def _batches(self, sql: str) -> Generator[pa.RecordBatch, None, None]:
        with self._rows(sql) as result:
            names = list(result.keys())
            for part in result.partitions():
                columns = [pa.array(_plain(col)) for col in zip(*part, strict=True)]
                batch = pa.RecordBatch.from_arrays(columns, names=names)
                if self._schema is None:
                    self._schema = batch.schema
                yield _conform(batch, self._schema)

    def schema(self) -> pa.Schema:
        if self._schema is None:
            with contextlib.closing(self._batches(f"{self.query}")) as first:
                next(first, None)
        if self._schema is None:  # no rows: the names alone, as strings
            with self._rows(f"SELECT * FROM ({self.query}) AS naiad_q LIMIT 0") as result:
                names = list(result.keys())  # a Result's keys(), not a dict's
                self._schema = pa.schema([(name, pa.string()) for name in names])
        return self._schema

    def count_rows(self) -> int:
        with self._rows(f"SELECT count(*) FROM ({self.query}) AS naiad_q") as result:
            return int(result.scalar_one())

    def batches(self, shard: int = 0, shards: int = 1) -> Iterator[pa.RecordBatch]:
        if shards == 1:
            yield from self._batches(self.query)
            return
        # every shard must deal the same sequence: order by every column
        width = len(self.schema())
        order = ", ".join(str(i + 1) for i in range(width))
        sql = f"SELECT * FROM ({self.query}) AS naiad_q ORDER BY {order}"
        yield from stride(self._batches(sql), shard, shards)

    def identity(self) -> dict[str, Any]:
        return {"query": self.query}


def _plain(values: tuple[Any, ...]) -> list[Any]:
    """Values Arrow infers one type for: Decimal as float (int when whole), as a driver's
    NUMERIC and DynamoDB's numbers arrive."""
    if not any(isinstance(v, decimal.Decimal) for v in values):
        return list(values)
    whole = all(
        v is None or (isinstance(v, decimal.Decimal) and v == v.to_integral_value()) for v in values
    )
    if whole:
        return [None if v is None else int(v) for v in values]
    return [None if v is None else float(v) for v in values]


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    if batch.schema.equals(schema):
        return batch
    try:
        return pa.Table.from_batches([batch]).cast(schema).combine_chunks().to_batches()[0]
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataSourceError(
            f"A later batch's types do not match the first's ({_line(exc)}); cast the "
            "columns to one type in the query."
        ) from None


class DynamoTable(TableSource):
    """A DynamoDB table, scanned; shards are its parallel scan's segments."""

    def __init__(self, uri: str, options: TableOptions, credentials: Mapping[str, Any]) -> None:
        self.uri, self.options = uri, options
        self.table = uri.removeprefix("dynamodb://").strip("/")
        if not re.fullmatch(r"[A-Za-z0-9_.-]{3,255}", self.table):
            raise DataSourceError(f"{uri}: {self.table!r} is not a DynamoDB table name.")
        self.client = _dynamodb_client(credentials)
        self.expression = filter_expression(options.filter)
        self._schema: pa.Schema | None = None
        self._call(self.client.describe_table, TableName=self.table)

    def _call(self, method: Any, **kwargs: Any) -> Any:
        import botocore.exceptions

        try:
            return method(**kwargs)
        except self.client.exceptions.ResourceNotFoundException:
            raise DataSourceError(f"{self.uri}: no such table.") from None
        except botocore.exceptions.ClientError as exc:
            error = exc.response.get("Error", {})
            raise DataSourceError(
                f"{self.uri}: {error.get('Code', 'error')}: {error.get('Message', exc)}"
            ) from None
        except (botocore.exceptions.BotoCoreError, OSError) as exc:
            raise DataSourceError(f"{self.uri}: could not reach DynamoDB: {_line(exc)}") from None

    def _pages(self, **scan: Any) -> Iterator[dict[str, Any]]:
        start: dict[str, Any] | None = None
        while True:
            args = {"TableName": self.table, **scan}
            if start:
                args["ExclusiveStartKey"] = start
            page = self._call(self.client.scan, **args)
            yield page
            start = page.get("LastEvaluatedKey")
            if not start:
                return

    def _projection(self) -> dict[str, Any]:
        wanted = list(self.options.columns or ())
        wanted += sorted(_filter_columns(self.options.filter) - set(wanted))
        if not self.options.columns:
            return {}
        names = {f"#c{i}": name for i, name in enumerate(wanted)}
        return {"ProjectionExpression": ", ".join(names), "ExpressionAttributeNames": names}

    def _to_batch(self, items: list[dict[str, Any]]) -> pa.RecordBatch:
        from boto3.dynamodb.types import TypeDeserializer

        plain = TypeDeserializer()
        rows = [{k: plain.deserialize(v) for k, v in item.items()} for item in items]
        if self._schema is None:
            names = list(self.options.columns or sorted({k for row in rows for k in row}))
            names += sorted(_filter_columns(self.options.filter) - set(names))
            arrays = [pa.array(_plain(tuple(_scalar(r.get(n)) for r in rows))) for n in names]
            self._schema = pa.RecordBatch.from_arrays(arrays, names=names).schema
        names = self._schema.names
        arrays = [pa.array(_plain(tuple(_scalar(r.get(n)) for r in rows))) for n in names]
        return _conform(pa.RecordBatch.from_arrays(arrays, names=names), self._schema)

    def _filtered(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        if self.expression is not None:
            table = pa.Table.from_batches([batch]).filter(self.expression)
            batch = table.combine_chunks().to_batches()[0] if table.num_rows else batch.slice(0, 0)
        if self.options.columns:
            batch = batch.select(list(self.options.columns))
        return batch

    def schema(self) -> pa.Schema:
        if self._schema is None:
            for page in self._pages(**self._projection()):
                if page.get("Items"):
                    self._to_batch(page["Items"])
                    break
        if self._schema is None:
            raise DataSourceError(f"{self.uri}: the table is empty.")
        if self.options.columns:
            return pa.schema([self._schema.field(n) for n in self.options.columns])
        return self._schema

    def count_rows(self) -> int:
        if self.expression is None:
            return sum(int(p.get("Count", 0)) for p in self._pages(Select="COUNT"))
        return sum(b.num_rows for b in self.batches())

    def batches(self, shard: int = 0, shards: int = 1) -> Iterator[pa.RecordBatch]:
        self.schema()
        scan = self._projection()
        if shards > 1:
            scan.update(Segment=shard, TotalSegments=shards)
        for page in self._pages(**scan):
            if page.get("Items"):
                yield self._filtered(self._to_batch(page["Items"]))

    def identity(self) -> dict[str, Any]:
        return {"table": self.table, "columns": self.options.columns}


def _scalar(value: Any) -> Any:
    """A DynamoDB value Arrow can hold: sets as sorted lists."""
    if isinstance(value, set | frozenset):
        return sorted(value)
    return value


def check_connection(name: str, kind: str, credentials: Mapping[str, Any]) -> str:
    """Reach a connection's service once (``SELECT 1``, a table listing): what it says."""
    if kind == "sql":
        SqlTable(f"sql://{name}", TableOptions(query="SELECT 1"), credentials).count_rows()
        return "connected; SELECT 1 answered"
    probe = DynamoTable.__new__(DynamoTable)
    probe.uri = f"connection {name}"
    probe.client = _dynamodb_client(credentials)
    tables = probe._call(probe.client.list_tables, Limit=100).get("TableNames", [])
    return f"connected; {len(tables)} table{'s' if len(tables) != 1 else ''} listed"


def _dynamodb_client(credentials: Mapping[str, Any]) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "dynamodb",
        endpoint_url=credentials.get("endpoint_url") or None,
        region_name=credentials.get("region") or None,
        aws_access_key_id=credentials.get("access_key_id") or None,
        aws_secret_access_key=credentials.get("secret_access_key") or None,
        config=Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 3}),
    )


def open_source(
    uri: str,
    options: TableOptions,
    credentials: Mapping[str, Any] | None = None,
    s3_endpoint_url: str | None = None,
) -> TableSource:
    """Open (and so check) the source a channel names; DataSourceError says what is wrong."""
    if uri.startswith("sql://"):
        if credentials is None:
            raise DataSourceError(f"{uri}: no connection named {uri[6:]!r} on the server.")
        return SqlTable(uri, options, credentials)
    if uri.startswith("dynamodb://"):
        return DynamoTable(uri, options, credentials or {})
    return FileTable(uri, options, s3_endpoint_url)
