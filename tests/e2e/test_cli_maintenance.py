"""`naiad runs delete` and `naiad gc` as a person runs them: a live server, the CLI as a
subprocess."""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import naiad
from naiad.core.errors import NotFound
from naiad.testing.live import LiveServer


def cli(server: LiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in server.environ().items() if k != "NAIAD_TOKEN"}
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "naiad.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def client(live: LiveServer) -> Iterator[naiad.Client]:
    with naiad.Client(url=live.url, token=live.token) as c:
        yield c


def test_runs_delete_asks_unless_yes(
    live: LiveServer, client: naiad.Client, tmp_path: Path
) -> None:
    run = client.runs.create(experiment="cleanup", name="old-try")
    batch = {"steps": [0, 1], "timestamps": [1.0, 2.0], "values": [1.0, 0.5]}
    client.runs.log_batch(run.id, {"batch_id": "b", "metrics": {"loss": batch}})
    (tmp_path / "w.bin").write_bytes(b"w" * 1000)
    client.runs.upload_artifact(run.id, tmp_path / "w.bin", "w.bin")

    asked = error_line(cli(live, "runs", "delete", run.id[:8]))
    assert "needs confirmation; pass --yes" in asked
    assert client.runs.get(run.id).name == "old-try"

    done = cli(live, "runs", "delete", run.id[:8], "--yes")
    assert done.returncode == 0, done.stderr
    assert f"Deleted run old-try ({run.id}) with its metrics and artifacts." in done.stdout
    with pytest.raises(NotFound):
        client.runs.get(run.id)
    assert not (live.home / "artifacts" / "runs" / run.id).exists()


def test_runs_delete_unknown_id(live: LiveServer) -> None:
    message = error_line(cli(live, "runs", "delete", "feedfacefeedfacefeedfacefeedface", "-y"))
    assert "No run with id 'feedfacefeedfacefeedfacefeedface'" in message


def test_gc_says_what_it_freed(live: LiveServer, client: naiad.Client) -> None:
    run = client.runs.create(experiment="cleanup")
    spool = live.home / "spool" / "0123456789abcdef0123456789abcdef"  # a deleted run's
    spool.mkdir(parents=True)
    (spool / "1-b.json").write_bytes(b"{}" * 2000)
    waiting = live.home / "spool" / run.id
    waiting.mkdir(parents=True)
    (waiting / "1-unsent.json").write_bytes(b"{}")

    done = cli(live, "gc", "--older-than", "0")
    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[0]
    assert first.startswith("Freed ") and " bytes): " in first
    assert "1 spool file(s)" in first and "the database's write-ahead log" in first
    assert "1 spooled metric batch(es) wait for the server; `naiad runs sync`" in done.stdout
    assert not spool.exists()

    as_json = cli(live, "gc", "--vacuum", "--json")
    assert as_json.returncode == 0, as_json.stderr
    result = json.loads(as_json.stdout)
    assert result["older_than_days"] == 7 and result["vacuum_bytes"] is not None
    assert result["problems"] == []

    bad = error_line(cli(live, "gc", "--older-than", "soon"))
    assert "--older-than 'soon' is not a duration" in bad
    os.remove(waiting / "1-unsent.json")
