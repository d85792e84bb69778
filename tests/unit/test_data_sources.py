"""Table sources: Parquet partitions on disk and on S3, a query on real PostgreSQL, a
DynamoDB table on moto's server; every shard split sees each row once."""

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv
import pyarrow.parquet as pq
import pytest

from naiad.data.materialise import describe_stream, materialise, read_table
from naiad.data.sources import DataSourceError, TableOptions, check_connection, open_source
from naiad.testing import postgres
from naiad.testing.s3 import S3Server, s3_server  # noqa: F401  (fixture)
from naiad.testing.tables import PIXELS, digits_table, load_dynamodb, load_postgres
from tests.conftest import need


def ids_of(source, shard: int = 0, shards: int = 1) -> list[int]:  # type: ignore[no-untyped-def]
    return [i for b in source.batches(shard, shards) for i in b.column("id").to_pylist()]


def assert_exactly_once(source, total: int, shards: int = 3) -> None:  # type: ignore[no-untyped-def]
    parts = [ids_of(source, k, shards) for k in range(shards)]
    seen = [i for part in parts for i in part]
    assert len(seen) == total and len(set(seen)) == total
    assert max(map(len, parts)) - min(map(len, parts)) <= 1  # equal shares for DDP


@pytest.fixture(scope="module")
def partitioned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("digits") / "ds"
    pq.write_to_dataset(digits_table(), str(root), partition_cols=["label"], row_group_size=200)
    return root


def test_parquet_partitions_columns_and_filter_are_pushed_down(partitioned: Path) -> None:
    source = open_source(
        str(partitioned),
        TableOptions(format="parquet", columns=("id", "p10", "label"), filter=[["label", "<", 3]]),
    )
    assert source.schema().names == ["id", "p10", "label"]
    labels = [v for b in source.batches() for v in b.column("label").to_pylist()]
    assert set(labels) == {0, 1, 2} and len(labels) == source.count_rows() == 537
    assert_exactly_once(source, 537)


def test_csv_dataset_and_an_or_filter(tmp_path: Path) -> None:
    table = digits_table().select(["id", "p5", "label"])
    (tmp_path / "csv").mkdir()
    pa.csv.write_csv(table.slice(0, 900), tmp_path / "csv" / "a.csv")
    pa.csv.write_csv(table.slice(900), tmp_path / "csv" / "b.csv")
    source = open_source(
        str(tmp_path / "csv"),
        TableOptions(format="csv", filter=[[["label", "=", 1]], [["label", "=", 7]]]),
    )
    expected = int(np.isin(table.column("label").to_numpy(), [1, 7]).sum())
    assert source.count_rows() == expected
    assert_exactly_once(source, expected, shards=4)


def test_bad_columns_filters_and_paths_name_the_source(partitioned: Path) -> None:
    with pytest.raises(DataSourceError, match="'nope' not in the data; it has id"):
        open_source(str(partitioned), TableOptions(format="parquet", columns=("nope",)))
    with pytest.raises(DataSourceError, match="filter's columns 'wat'"):
        open_source(str(partitioned), TableOptions(format="parquet", filter=[["wat", "=", 1]]))
    with pytest.raises(DataSourceError, match="is not \\[column, op, value\\]"):
        open_source(str(partitioned), TableOptions(format="parquet", filter=[["a", "~", 1]]))
    with pytest.raises(DataSourceError, match="missing: nothing found there"):
        open_source("missing", TableOptions(format="parquet"))


def test_materialised_fingerprint_is_of_the_rows_not_the_batches(
    partitioned: Path, tmp_path: Path
) -> None:
    a = materialise(open_source(str(partitioned), TableOptions(format="parquet")), tmp_path / "a")
    rewritten = tmp_path / "flat"
    rewritten.mkdir()
    pq.write_table(read_table(tmp_path / "a"), rewritten / "x.parquet", row_group_size=77)
    b = materialise(open_source(str(rewritten), TableOptions(format="parquet")), tmp_path / "b")
    assert a.rows == b.rows == 1797 and a.fingerprint == b.fingerprint
    assert read_table(tmp_path / "b").num_rows == 1797
    c = materialise(
        open_source(str(rewritten), TableOptions(format="parquet", filter=[["label", "!=", 9]])),
        tmp_path / "c",
    )
    assert c.rows == 1797 - 180 and c.fingerprint != a.fingerprint


def test_parquet_partitions_on_s3(s3_server: S3Server, partitioned: Path) -> None:  # noqa: F811
    client = s3_server.client()
    prefix = s3_server.fresh_uri().removeprefix(f"s3://{s3_server.bucket}/")
    for path in sorted(partitioned.rglob("*.parquet")):
        key = f"{prefix}/{path.relative_to(partitioned).as_posix()}"
        client.upload_file(str(path), s3_server.bucket, key)
    uri = f"s3://{s3_server.bucket}/{prefix}"
    source = open_source(
        uri,
        TableOptions(format="parquet", filter=[["label", "in", [4, 5]]]),
        s3_endpoint_url=s3_server.endpoint_url,
    )
    assert source.count_rows() == 181 + 182
    assert_exactly_once(source, 363)
    with pytest.raises(DataSourceError, match=r"nothing found there|no parquet files"):
        open_source(f"{uri}-none", TableOptions(format="parquet"), None, s3_server.endpoint_url)


@pytest.fixture(scope="module")
def digits_db() -> Iterator[str]:
    url = postgres.admin_url()
    need(url is not None, f"PostgreSQL ({postgres.ENV})")
    assert url is not None
    with postgres.scratch_database(url) as db_url:
        load_postgres(db_url)
        yield db_url


def test_a_query_on_postgresql(digits_db: str) -> None:
    creds = {"url": digits_db}
    source = open_source(
        "sql://warehouse", TableOptions(query="SELECT * FROM digits WHERE label < 5;"), creds
    )
    assert source.count_rows() == 901
    assert source.schema().names == ["id", *PIXELS, "label"]
    assert_exactly_once(source, 901)
    assert check_connection("warehouse", "sql", creds).startswith("connected")


def test_query_errors_and_refused_credentials_name_the_source(digits_db: str) -> None:
    missing = open_source("sql://w", TableOptions(query="SELECT * FROM nope"), {"url": digits_db})
    with pytest.raises(DataSourceError, match=r'sql://w: the query failed: .*"nope" does not'):
        missing.schema()
    read_only = open_source(
        "sql://w", TableOptions(query="SELECT id FROM digits FOR UPDATE"), {"url": digits_db}
    )
    with pytest.raises(DataSourceError, match="read-only transaction"):
        read_only.schema()
    wrong = digits_db.replace("postgres@", "nobody:hunter2@", 1)
    refused = open_source("sql://w", TableOptions(query="SELECT 1"), {"url": wrong})
    with pytest.raises(DataSourceError, match="sql://w: could not connect") as caught:
        refused.schema()
    assert "hunter2" not in caught.value.message
    still = open_source(
        "sql://w", TableOptions(query="SELECT count(*) FROM digits"), {"url": digits_db}
    )
    assert next(still.batches()).column(0).to_pylist() == [1797]  # nothing was deleted


def test_dynamodb_on_motos_server(s3_server: S3Server) -> None:  # noqa: F811
    import boto3

    creds = {"endpoint_url": s3_server.endpoint_url, "region": "us-east-1"}
    ddb = boto3.client("dynamodb", endpoint_url=s3_server.endpoint_url, region_name="us-east-1")
    load_dynamodb(ddb, "digits-ddb", 300, ["id", "p0", "p33", "label"])
    table = digits_table().slice(0, 300).to_pylist()
    source = open_source(
        "dynamodb://digits-ddb", TableOptions(columns=("id", "p33", "label")), creds
    )
    assert source.schema().names == ["id", "p33", "label"] and source.count_rows() == 300
    parts = [ids_of(source, k, 4) for k in range(4)]
    seen = sorted(i for p in parts for i in p)
    assert seen == list(range(300))  # DynamoDB's segments: every item once
    filtered = open_source("dynamodb://digits-ddb", TableOptions(filter=[["label", "=", 3]]), creds)
    expected = sum(1 for r in table if r["label"] == 3)
    assert filtered.count_rows() == expected
    with pytest.raises(DataSourceError, match="dynamodb://absent: no such table"):
        open_source("dynamodb://absent", TableOptions(), creds)
    assert "table" in check_connection("ddb", "dynamodb", creds)


def test_streamed_record_names_its_files_without_reading(partitioned: Path, tmp_path: Path) -> None:
    source = open_source(str(partitioned), TableOptions(format="parquet"))
    record = describe_stream(source, tmp_path / "ch", {"uri": str(partitioned)})
    assert record.mode == "FastFile" and record.rows == 1797
    assert (tmp_path / "ch" / "naiad-channel.json").is_file()
    again = describe_stream(source, tmp_path / "ch2", {"uri": str(partitioned)})
    assert again.fingerprint == record.fingerprint
