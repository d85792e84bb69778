"""Data channels end to end on the real server: a SQL query on PostgreSQL trains the
tabular example and its rows reach the model's lineage; Parquet partitions on the S3
store are streamed by a 2-process job that sees each row once per epoch; a DynamoDB
table on moto's server is materialised; bad sources fail the job before the script."""

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import naiad
from naiad.core.errors import InvalidInput
from naiad.testing import postgres
from naiad.testing.live import LiveServer
from naiad.testing.s3 import S3Server
from naiad.testing.tables import PIXELS, digits_table, load_dynamodb, load_postgres
from tests.conftest import need

ROOT = Path(__file__).resolve().parents[2]
TABULAR = ROOT / "examples" / "tabular"
JOBS = Path(__file__).parent / "jobs" / "tables"
SECRET = "pw-never-shown"
IDS = re.compile(r"epoch (\d) rank (\d) columns (\[.*?\]) ids (\[.*\])")


@pytest.fixture(scope="module")
def s3_live(
    tmp_path_factory: pytest.TempPathFactory, s3_server: S3Server
) -> Iterator[tuple[LiveServer, str]]:
    """A server whose artifact store is a prefix of the S3-compatible test store."""
    uri = s3_server.fresh_uri()
    env = {"NAIAD_ARTIFACT_URI": uri, "NAIAD_S3_ENDPOINT_URL": s3_server.endpoint_url}
    server = LiveServer(home=tmp_path_factory.mktemp("naiad") / "home", env=env)
    server.start()
    try:
        yield server, uri
    finally:
        server.stop()


@pytest.fixture(scope="module")
def warehouse() -> Iterator[str]:
    """A PostgreSQL database with the digits in table ``digits``; its URL with a password
    (trust auth ignores it; it must never show up in a job's spec or log)."""
    url = postgres.admin_url()
    need(url is not None, f"PostgreSQL ({postgres.ENV})")
    assert url is not None
    with postgres.scratch_database(url) as db_url:
        load_postgres(db_url)
        user, _, rest = db_url.removeprefix("postgresql://").partition("@")
        yield f"postgresql://{user.split(':')[0]}:{SECRET}@{rest}"


def client_of(server: LiveServer) -> naiad.Client:
    return naiad.Client(url=server.url, token=server.token)


def log_of(client: naiad.Client, name: str) -> str:
    return "".join(client.training_jobs.get(name).logs())


def test_sql_channel_trains_and_its_rows_reach_the_lineage(
    s3_live: tuple[LiveServer, str], warehouse: str
) -> None:
    server, _ = s3_live
    client = client_of(server)
    client.connections.create("warehouse", kind="sql", url=warehouse, description="digits")
    shown = client.connections.get("warehouse")
    assert SECRET not in shown.model_dump_json() and shown.has_secret
    assert client.connections.check("warehouse").ok

    columns = ", ".join([*PIXELS, "label"])
    job = client.training_jobs.create(
        name="digits-from-sql",
        entrypoint="train.py",
        source_dir=TABULAR,
        hyperparameters={"epochs": 15},
        inputs={"train": "sql://warehouse", "validation": "sql://warehouse"},
        channels={
            "train": {"query": f"SELECT {columns} FROM digits WHERE id % 5 <> 0"},
            "validation": {"query": f"SELECT {columns} FROM digits WHERE id % 5 = 0"},
        },
    )
    ended = job.wait(timeout=180)
    assert ended.status == "Completed", ended.status_reason
    log = log_of(client, job.name)
    assert "staging channel train: 1,437 rows x 65 columns" in log
    assert SECRET not in log and SECRET not in ended.model_dump_json()

    version = client.models.register("digits-sql", job=job.name)
    train = version.lineage.data["train"]
    assert (train["source"], train["mode"], train["rows"]) == ("sql://warehouse", "File", 1437)
    assert train["fingerprint"].startswith("sha256:")
    assert version.lineage.data["validation"]["rows"] == 360
    assert float(version.lineage.metrics["val/accuracy"]) >= 0.9

    again = client.training_jobs.create(
        name="digits-from-sql-again",
        entrypoint="count_rows.py",
        source_dir=JOBS,
        inputs={"train": "sql://warehouse"},
        channels={"train": {"query": f"SELECT {columns} FROM digits WHERE id % 5 <> 0"}},
    )
    assert again.wait(timeout=120).status == "Completed"
    tags = client.runs.get(again.job.run_id).tags
    # the same rows, the same fingerprint: a model's data can be told apart from another's
    assert json.loads(tags["naiad.data.train"])["fingerprint"] == train["fingerprint"]


def upload_partitions(s3: S3Server, prefix: str, root: Path) -> None:
    pq.write_to_dataset(digits_table(), str(root), partition_cols=["label"], row_group_size=100)
    for path in sorted(root.rglob("*.parquet")):
        key = f"{prefix}/{path.relative_to(root).as_posix()}"
        s3.client().upload_file(str(path), s3.bucket, key)


def test_parquet_on_the_s3_store_streamed_by_two_processes(
    s3_live: tuple[LiveServer, str], s3_server: S3Server, tmp_path: Path
) -> None:
    server, store_uri = s3_live
    prefix = store_uri.removeprefix(f"s3://{s3_server.bucket}/")
    upload_partitions(s3_server, f"{prefix}/datasets/digits", tmp_path / "ds")
    dataset = f"{store_uri}/datasets/digits"
    client = client_of(server)
    job = client.training_jobs.create(
        name="stream-digits",
        entrypoint="stream_ids.py",
        source_dir=JOBS,
        inputs={"train": dataset},
        channels={
            "train": {
                "format": "parquet",
                "columns": ["id", "label"],
                "filter": [["label", "<", 5]],
                "input_mode": "FastFile",
            }
        },
        processes_per_node=2,
    )
    ended = job.wait(timeout=180)
    log = log_of(client, job.name)
    assert ended.status == "Completed", (ended.status_reason, log[-3000:])
    assert f"streamed in the job (FastFile) from {dataset}: 901 rows x 2 columns" in log
    seen: dict[tuple[int, int], list[int]] = {}
    for epoch, rank, columns, ids in IDS.findall(log):
        assert json.loads(columns) == ["id", "label"]  # the column selection held
        seen[int(epoch), int(rank)] = json.loads(ids)
    assert sorted(seen) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    expected = [
        i for i, label in enumerate(digits_table().column("label").to_pylist()) if label < 5
    ]
    for epoch in (0, 1):
        both = seen[epoch, 0] + seen[epoch, 1]
        assert sorted(both) == expected  # every row once per epoch, across both ranks
        assert abs(len(seen[epoch, 0]) - len(seen[epoch, 1])) <= 2
    assert seen[0, 0] != seen[1, 0]  # reshuffled per epoch
    tag = json.loads(client.runs.get(job.job.run_id).tags["naiad.data.train"])
    assert (tag["mode"], tag["rows"]) == ("FastFile", 901)


def test_dynamodb_table_materialised(s3_live: tuple[LiveServer, str], s3_server: S3Server) -> None:
    import boto3

    server, _ = s3_live
    ddb = boto3.client("dynamodb", endpoint_url=s3_server.endpoint_url, region_name="us-east-1")
    load_dynamodb(ddb, "digits-e2e", 250, ["id", "p7", "label"])
    client = client_of(server)
    client.connections.create(
        "moto-ddb",
        kind="dynamodb",
        endpoint_url=s3_server.endpoint_url,
        region="us-east-1",
        access_key_id="naiad-test",
        secret_access_key="naiad-test-secret",
    )
    job = client.training_jobs.create(
        name="from-dynamodb",
        entrypoint="count_rows.py",
        source_dir=JOBS,
        inputs={"train": "dynamodb://digits-e2e"},
        channels={"train": {"connection": "moto-ddb", "filter": [["label", ">=", 8]]}},
    )
    ended = job.wait(timeout=120)
    log = log_of(client, job.name)
    assert ended.status == "Completed", (ended.status_reason, log[-2000:])
    expected = sum(1 for v in digits_table().column("label").to_pylist()[:250] if v >= 8)
    assert f"rows {expected} columns id,label,p7" in log
    assert "labels [8, 9]" in log


def test_bad_sources_fail_before_the_script_and_name_the_source(
    s3_live: tuple[LiveServer, str], warehouse: str
) -> None:
    server, _ = s3_live
    client = client_of(server)
    client.connections.create("warehouse2", kind="sql", url=warehouse)
    missing = client.training_jobs.create(
        name="missing-table",
        entrypoint="count_rows.py",
        source_dir=JOBS,
        inputs={"train": "sql://warehouse2"},
        channels={"train": {"query": "SELECT * FROM no_such_table"}},
    )
    ended = missing.wait(timeout=120)
    assert ended.status == "Failed"
    assert "Input channel 'train': sql://warehouse2: the query failed" in (
        ended.status_reason or ""
    )
    assert "no_such_table" in (ended.status_reason or "")
    assert "script started" not in log_of(client, missing.name)

    absent = client.training_jobs.create(
        name="missing-files",
        entrypoint="count_rows.py",
        source_dir=JOBS,
        inputs={"train": f"{s3_live[1]}/datasets/nothing-here"},
        channels={"train": {"format": "parquet"}},
    )
    ended = absent.wait(timeout=120)
    assert ended.status == "Failed" and "datasets/nothing-here" in (ended.status_reason or "")

    with pytest.raises(InvalidInput, match="naiad connections create"):
        client.training_jobs.create(
            name="no-connection",
            entrypoint="count_rows.py",
            source_dir=JOBS,
            inputs={"train": "sql://nobody"},
            channels={"train": {"query": "SELECT 1"}},
        )
    with pytest.raises(InvalidInput, match="needs a query"):
        client.training_jobs.create(
            name="no-query",
            entrypoint="count_rows.py",
            source_dir=JOBS,
            inputs={"train": "sql://warehouse2"},
        )
    assert client.connections.get("warehouse2").name == "warehouse2"  # nothing lost


def test_cli_connection_and_a_local_parquet_channel(client_env: LiveServer, tmp_path: Path) -> None:
    """The command line's path: local Parquet partitions, `naiad train --channel`,
    `naiad connections` answering."""
    client = naiad.Client()
    root = tmp_path / "ds"
    pq.write_to_dataset(digits_table(), str(root), partition_cols=["label"])

    def naiad_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "naiad.cli.main", *args],
            capture_output=True,
            text=True,
            timeout=180,
            env=client_env.environ(),
        )

    made = naiad_cli("connections", "create", "local-db", "--url", "postgresql://u:zz@h/db")
    assert made.returncode == 0, made.stderr
    listed = naiad_cli("connections", "ls")
    assert "local-db" in listed.stdout and "zz" not in listed.stdout
    trained = naiad_cli(
        "train",
        "stream_ids.py",
        "--source",
        str(JOBS),
        "--name",
        "cli-stream",
        "--input",
        f"train={root}",
        "--channel",
        "train.format=parquet",
        "--channel",
        'train.columns=["id", "label"]',
        "--procs",
        "2",
        "--follow",
    )
    assert trained.returncode == 0, trained.stdout + trained.stderr
    log = log_of(client, "cli-stream")
    assert "staging channel train: 1,797 rows x 2 columns" in log  # File: materialised
    epoch0 = [json.loads(ids) for e, _, _, ids in IDS.findall(log) if e == "0"]
    assert sorted(epoch0[0] + epoch0[1]) == list(range(1797))
    bad = naiad_cli("train", "x.py", "--source", str(JOBS), "--channel", "train")
    assert bad.returncode != 0 and "NAME.OPTION=VALUE" in bad.stderr + bad.stdout
