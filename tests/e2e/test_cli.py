"""The CLI end to end: a live server, data made through the SDK, `naiad ...` as a subprocess."""

import csv
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import naiad
from naiad.sdk.spool import Spool
from naiad.testing.live import LiveServer, free_port

LONG_POINTS = 1500  # more than one screen, fewer than a downsampled read would keep


@dataclass
class Data:
    run_a: str
    run_b: str
    run_long: str
    run_art: str


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {**extra}
    if "COLUMNS" in os.environ and env.get("COLUMNS") == os.environ["COLUMNS"]:
        del env["COLUMNS"]  # the CLI's own default width for piped output applies
    env.pop("NAIAD_TOKEN", None)  # found in $NAIAD_HOME/admin_token, as a user's would be
    return env


def naiad_cli(
    *args: str, env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "naiad.cli.main", *args],
        env=_env(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout


def one_sentence_error(result: subprocess.CompletedProcess[str]) -> str:
    """Non-zero exit, one line on stderr, no traceback anywhere; returns that line."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


@pytest.fixture(scope="module")
def env(server: LiveServer) -> dict[str, str]:
    return server.environ()


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[naiad.Client]:
    with naiad.Client(url=server.url, token=server.token) as c:
        yield c


def _columns(values: list[float | str], start: int = 0) -> dict[str, list]:
    n = len(values)
    return {
        "steps": list(range(start, start + n)),
        "timestamps": [1000.0 + i for i in range(n)],
        "values": values,
    }


@pytest.fixture(scope="module")
def data(client: naiad.Client, tmp_path_factory: pytest.TempPathFactory) -> Data:
    client.experiments.create("vision", description="Digits classifiers")
    a = client.runs.create(
        experiment="vision",
        name="run-alpha",
        params={"lr": 0.1, "optimizer": "adam", "layers": 3},
        tags={"team": "blue"},
    )
    client.runs.log_batch(
        a.id,
        {
            "batch_id": "b1",
            "metrics": {"acc": _columns([0.5, 0.9123456]), "loss": _columns([1.0, 0.25])},
        },
    )
    b = client.runs.create(
        experiment="vision", name="run-beta", params={"lr": 0.01, "optimizer": "adam", "layers": 3}
    )
    client.runs.log_batch(
        b.id,
        {
            "batch_id": "b1",
            "metrics": {"acc": _columns([0.4, 0.7]), "loss": _columns([2.0, "NaN"])},
        },
    )
    client.runs.update(b.id, status="Failed", status_reason="Loss diverged.")
    long = client.runs.create(experiment="long", name="run-long")
    values = [float(i) / 7 for i in range(LONG_POINTS)]
    client.runs.log_batch(
        long.id,
        {
            "batch_id": "b1",
            "metrics": {"x": _columns(values), "y": _columns(values[:10], start=5)},
        },
    )
    art = client.runs.create(experiment="artifacts", name="run-art")
    files = tmp_path_factory.mktemp("artifacts")
    (files / "weights.bin").write_bytes(b"\x00\x01" * 5000)
    (files / "notes.txt").write_text("hello artifacts\n")
    client.runs.upload_artifact(art.id, files / "weights.bin", "model/weights.bin")
    client.runs.upload_artifact(art.id, files / "notes.txt", "model/config/notes.txt")
    client.runs.upload_artifact(art.id, files / "notes.txt", "notes.txt")
    return Data(run_a=a.id, run_b=b.id, run_long=long.id, run_art=art.id)


# -- formatting (no server) ---------------------------------------------------------------------
def test_formatting_helpers() -> None:
    from naiad.cli import output

    assert output.metric_value(0.91234567) == "0.9123"
    assert output.metric_value(123456.0) == "1.235e+05"
    assert output.metric_value(float("nan")) == "NaN"
    assert output.metric_value(float("-inf")) == "-Infinity"
    assert output.metric_value("Infinity") == "Infinity"
    assert output.metric_value(None) == "-"
    assert output.duration(0.25) == "250ms"
    assert output.duration(4.2) == "4.2s"
    assert output.duration(185) == "3m 05s"
    assert output.duration(3720) == "1h 02m"
    assert output.duration(2 * 86400 + 3 * 3600) == "2d 03h"
    assert output.size(1536) == "1.5 KB"
    assert output.param_value(True) == "true" and output.param_value(None) == "null"


# -- help --------------------------------------------------------------------------------------
def test_help_lists_the_commands(env: dict[str, str]) -> None:
    out = ok(naiad_cli("runs", "--help", env=env))
    for command in ("ls", "show", "compare", "export", "sync", "artifacts", "download"):
        assert command in out
    assert "create" in ok(naiad_cli("experiments", "--help", env=env))


def test_jobs_help_keeps_the_rank_prefix(env: dict[str, str]) -> None:
    """Square brackets in help text are Rich markup unless escaped: [rankN] must show."""
    wide = {**env, "COLUMNS": "200"}
    assert "prefixed [rankN]" in ok(naiad_cli("jobs", "--help", env=wide))
    assert "prefixed [rankN]" in ok(naiad_cli("jobs", "logs", "--help", env=wide))


# -- experiments ---------------------------------------------------------------------------------
def test_experiments_ls_table_and_json(env: dict[str, str], data: Data) -> None:
    out = ok(naiad_cli("experiments", "ls", env=env))
    assert "vision" in out and "Digits classifiers" in out
    listed = {
        e["name"]: e for e in json.loads(ok(naiad_cli("experiments", "ls", "--json", env=env)))
    }
    assert listed["vision"]["run_count"] == 2
    assert listed["vision"]["description"] == "Digits classifiers"
    assert {"id", "name", "created_at", "tags"} <= set(listed["vision"])


def test_experiments_create_and_delete(env: dict[str, str], client: naiad.Client) -> None:
    out = ok(naiad_cli("experiments", "create", "scratch", "--description", "temp", env=env))
    assert "scratch" in out
    assert client.experiments.get("scratch").description == "temp"

    again = one_sentence_error(naiad_cli("experiments", "create", "scratch", env=env))
    assert "already exists" in again

    # no terminal to ask on: refuse rather than delete unasked
    unconfirmed = one_sentence_error(naiad_cli("experiments", "delete", "scratch", env=env))
    assert "--yes" in unconfirmed
    assert client.experiments.get("scratch").name == "scratch"

    ok(naiad_cli("experiments", "delete", "scratch", "--yes", env=env))
    names = [e.name for e in client.experiments.list()]
    assert "scratch" not in names

    missing = one_sentence_error(naiad_cli("experiments", "delete", "scratch", "--yes", env=env))
    assert "scratch" in missing


# -- runs ls -------------------------------------------------------------------------------------
def test_runs_ls_table(env: dict[str, str], data: Data) -> None:
    out = ok(naiad_cli("runs", "ls", env=env))
    lines = out.splitlines()
    for column in ("id", "name", "experiment", "status", "started", "duration", "lr", "acc"):
        assert column in lines[0]
    alpha = next(line for line in lines if "run-alpha" in line)
    beta = next(line for line in lines if "run-beta" in line)
    assert data.run_a[:8] in alpha and "vision" in alpha and "Running" in alpha
    assert "0.1" in alpha and "0.9123" in alpha  # latest metric, 4 significant digits
    assert "Failed" in beta and "0.01" in beta and "NaN" in beta
    assert "run-long" in out and "long" in out


def test_runs_ls_one_experiment(env: dict[str, str], data: Data) -> None:
    out = ok(naiad_cli("runs", "ls", "--experiment", "vision", env=env))
    assert "experiment" not in out.splitlines()[0]  # the same on every row: no column
    assert "run-alpha" in out and "run-beta" in out and "run-long" not in out


def test_runs_ls_fits_a_narrow_screen(env: dict[str, str], data: Data) -> None:
    out = ok(naiad_cli("runs", "ls", "-e", "vision", env={**env, "COLUMNS": "70"}))
    lines = out.splitlines()
    assert all(len(line) <= 70 for line in lines)
    assert any("run-alpha" in line and data.run_a[:8] in line for line in lines)
    assert "hidden to fit" in out


def test_runs_ls_json_filter_and_order(env: dict[str, str], data: Data) -> None:
    runs = json.loads(
        ok(naiad_cli("runs", "ls", "--filter", "metrics.acc > 0.8", "--json", env=env))
    )
    assert [r["id"] for r in runs] == [data.run_a]
    run = runs[0]
    assert run["params"] == {"lr": 0.1, "optimizer": "adam", "layers": 3}
    assert run["metrics"]["acc"]["count"] == 2
    assert run["experiment"] == "vision"

    args = ["runs", "ls", "-e", "vision", "--json"]
    ascending = json.loads(ok(naiad_cli(*args, "--order-by", "metrics.acc ASC", env=env)))
    assert [r["name"] for r in ascending] == ["run-beta", "run-alpha"]
    by_params = json.loads(
        ok(naiad_cli(*args, "--order-by", "params.optimizer", "--order-by", "params.lr", env=env))
    )
    assert [r["name"] for r in by_params] == ["run-beta", "run-alpha"]


def test_runs_ls_limit_says_how_many_more(env: dict[str, str], data: Data) -> None:
    out = ok(naiad_cli("runs", "ls", "--limit", "1", env=env))
    assert "1 of 4 runs" in out
    assert len(json.loads(ok(naiad_cli("runs", "ls", "-n", "2", "--json", env=env)))) == 2


def test_runs_ls_empty_match(env: dict[str, str], data: Data) -> None:
    out = ok(naiad_cli("runs", "ls", "--filter", "metrics.acc > 5", env=env))
    assert "No runs match" in out
    assert json.loads(ok(naiad_cli("runs", "ls", "-f", "metrics.acc > 5", "--json", env=env))) == []


# -- runs show ------------------------------------------------------------------------------------
def test_runs_show_full_and_short_id(env: dict[str, str], data: Data) -> None:
    out = ok(naiad_cli("runs", "show", data.run_a, env=env))
    assert "run-alpha" in out and data.run_a in out and "vision" in out and "Running" in out
    assert "optimizer" in out and "adam" in out and "team" in out and "blue" in out
    acc = next(line for line in out.splitlines() if "acc" in line and "0.9123" in line)
    assert "0.5" in acc and "2" in acc  # min and count
    short = ok(naiad_cli("runs", "show", data.run_a[:8], env=env))
    assert "run-alpha" in short and data.run_a in short


def test_runs_show_failed_run_with_nan(env: dict[str, str], data: Data) -> None:
    out = ok(naiad_cli("runs", "show", data.run_b, env=env))
    assert "Failed" in out and "Loss diverged." in out
    loss = next(line for line in out.splitlines() if line.strip(" │|").startswith("loss"))
    assert "NaN" in loss and "2" in loss


def test_runs_show_json(env: dict[str, str], data: Data) -> None:
    run = json.loads(ok(naiad_cli("runs", "show", data.run_art[:10], "--json", env=env)))
    assert run["id"] == data.run_art
    assert run["name"] == "run-art" and run["status"] == "Running"
    paths = {a["path"] for a in run["artifacts"] if not a["is_dir"]}
    assert paths == {"model/weights.bin", "model/config/notes.txt", "notes.txt"}

    b = json.loads(ok(naiad_cli("runs", "show", data.run_b, "--json", env=env)))
    assert b["metrics"]["loss"]["value"] == "NaN"
    assert b["metrics"]["acc"]["max"] == 0.7
    assert b["status_reason"] == "Loss diverged."


# -- compare -------------------------------------------------------------------------------------
def test_runs_compare_table(env: dict[str, str], data: Data) -> None:
    out = ok(naiad_cli("runs", "compare", data.run_a, data.run_b[:8], env=env))
    assert "run-alpha" in out and "run-beta" in out
    lr = next(line for line in out.splitlines() if " lr " in f" {line} ")
    assert "*" in lr and "0.1" in lr and "0.01" in lr  # the differing param, marked
    optimizer = next(line for line in out.splitlines() if "optimizer" in line)
    assert "*" not in optimizer
    acc = next(line for line in out.splitlines() if " acc " in f" {line} ")
    assert "0.9123" in acc and "0.7" in acc
    assert "1 param(s) differ" in out


def test_runs_compare_json(env: dict[str, str], data: Data) -> None:
    body = json.loads(ok(naiad_cli("runs", "compare", data.run_a, data.run_b, "--json", env=env)))
    assert body["differing_params"] == ["lr"]
    assert body["params"]["lr"] == [0.1, 0.01]
    assert body["metrics"]["loss"] == [0.25, "NaN"]
    assert [r["id"] for r in body["runs"]] == [data.run_a, data.run_b]


def test_runs_compare_needs_two(env: dict[str, str], data: Data) -> None:
    assert "two" in one_sentence_error(naiad_cli("runs", "compare", data.run_a, env=env))


# -- export --------------------------------------------------------------------------------------
def test_runs_export_csv_default_path(env: dict[str, str], data: Data, tmp_path: Path) -> None:
    out = ok(naiad_cli("runs", "export", data.run_long, "--format", "csv", env=env, cwd=tmp_path))
    path = tmp_path / f"{data.run_long}.csv"
    assert str(path.name) in out and f"{LONG_POINTS + 10:,} points" in out
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == LONG_POINTS + 10
    xs = [r for r in rows if r["key"] == "x"]
    assert [int(r["step"]) for r in xs] == list(range(LONG_POINTS))
    assert float(xs[-1]["value"]) == pytest.approx((LONG_POINTS - 1) / 7)
    ys = [r for r in rows if r["key"] == "y"]
    assert [int(r["step"]) for r in ys] == list(range(5, 15))


def test_runs_export_parquet(env: dict[str, str], data: Data, tmp_path: Path) -> None:
    target = tmp_path / "out" / "long.parquet"
    out = ok(
        naiad_cli(
            "runs", "export", data.run_long, "--format", "parquet", "-o", str(target), env=env
        )
    )
    assert "long.parquet" in out
    table = pq.read_table(target)
    assert table.num_rows == LONG_POINTS + 10
    assert table.column_names == ["key", "step", "timestamp", "value"]
    columns = table.to_pydict()
    x_steps = [s for k, s in zip(columns["key"], columns["step"], strict=True) if k == "x"]
    assert x_steps == list(range(LONG_POINTS))


def test_runs_export_infers_parquet_and_keeps_nan(
    env: dict[str, str], data: Data, tmp_path: Path
) -> None:
    target = tmp_path / "beta.parquet"
    ok(naiad_cli("runs", "export", data.run_b, "-o", str(target), env=env))
    columns = pq.read_table(target).to_pydict()
    losses = [v for k, v in zip(columns["key"], columns["value"], strict=True) if k == "loss"]
    assert losses[0] == 2.0 and losses[1] != losses[1]  # NaN survives the trip


def test_runs_export_bad_format(env: dict[str, str], data: Data, tmp_path: Path) -> None:
    result = naiad_cli("runs", "export", data.run_a, "--format", "xlsx", env=env, cwd=tmp_path)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "xlsx" in result.stderr
    assert not list(tmp_path.iterdir())


# -- sync ----------------------------------------------------------------------------------------
def test_runs_sync_replays_spooled_batches(
    env: dict[str, str], server: LiveServer, client: naiad.Client
) -> None:
    run = client.runs.create(experiment="offline", name="run-offline")
    client.runs.log_batch(run.id, {"batch_id": "first", "metrics": {"m": _columns([1.0])}})
    spool = Spool(server.home / "spool", run.id)
    spool.write({"batch_id": "first", "metrics": {"m": _columns([1.0])}})  # already stored
    spool.write({"batch_id": "second", "metrics": {"m": _columns([2.0, 3.0], start=1)}})
    spool.write({"batch_id": "third", "metrics": {"m": _columns([4.0], start=3)}})

    out = ok(naiad_cli("runs", "sync", env=env))
    assert "Sent 2 batch(es) (4 points) for 1 run(s); 1 were already on the server." in out
    assert spool.pending() == []
    series = client.runs.metric_history(run.id, "m")
    assert series.steps.tolist() == [0, 1, 2, 3]
    assert series.values.tolist() == [1.0, 2.0, 3.0, 4.0]

    assert "Nothing to sync" in ok(naiad_cli("runs", "sync", env=env))


def test_runs_sync_delivers_late_points_and_final_status(
    env: dict[str, str], server: LiveServer, client: naiad.Client
) -> None:
    """A run that ended while the server was away gets its points and its final status."""
    run = client.runs.create(experiment="offline", name="ended-offline")
    spool = Spool(server.home / "spool", run.id)
    spool.write({"batch_id": "late", "metrics": {"m": _columns([1.0, 2.0])}})
    spool.save_end("Failed", "OOM at step 2")
    ok(naiad_cli("runs", "sync", env=env))
    stored = client.runs.get(run.id)
    assert stored.status == "Failed" and stored.status_reason == "OOM at step 2"
    assert stored.metrics["m"].count == 2
    assert spool.pending() == [] and spool.load_end() is None


def test_runs_sync_keeps_what_the_server_refuses(
    env: dict[str, str], server: LiveServer, client: naiad.Client
) -> None:
    run = client.runs.create(experiment="offline", name="run-deleted")
    client.runs.delete(run.id)
    spool = Spool(server.home / "spool", run.id)
    spool.write({"batch_id": "late", "metrics": {"m": _columns([1.0])}})

    result = naiad_cli("runs", "sync", env=env)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "No run" in result.stderr and "1 batch(es) could not be sent" in result.stderr
    assert len(spool.pending()) == 1

    result = naiad_cli("runs", "sync", "--drop-refused", env=env)
    assert result.returncode == 0, result.stderr
    assert "1 batch(es) dropped" in result.stderr
    assert spool.pending() == []


def test_runs_sync_without_server(server: LiveServer) -> None:
    spool = Spool(server.home / "spool", "0" * 32)
    spool.write({"batch_id": "x", "metrics": {"m": _columns([1.0])}})
    try:
        env = {**server.environ(), "NAIAD_URL": f"http://127.0.0.1:{free_port()}"}
        line = one_sentence_error(naiad_cli("runs", "sync", env=env))
        assert "Cannot reach" in line and "still waiting" in line
        assert len(spool.pending()) == 1
    finally:
        for path in spool.pending():
            Spool.remove(path)
        spool.dir.rmdir()


# -- artifacts -------------------------------------------------------------------------------------
def test_runs_artifacts_listing(env: dict[str, str], data: Data) -> None:
    out = ok(naiad_cli("runs", "artifacts", data.run_art, env=env))
    assert "model/" in out and "notes.txt" in out and "weights.bin" not in out
    deep = ok(naiad_cli("runs", "artifacts", data.run_art, "-r", env=env))
    assert "model/weights.bin" in deep and "9.8 KB" in deep
    listed = json.loads(
        ok(naiad_cli("runs", "artifacts", data.run_art, "model", "--json", env=env))
    )
    assert {a["path"]: a["is_dir"] for a in listed} == {
        "model/config": True,
        "model/weights.bin": False,
    }
    assert "no artifacts" in ok(naiad_cli("runs", "artifacts", data.run_a, env=env))


def test_runs_download_file_and_directory(env: dict[str, str], data: Data, tmp_path: Path) -> None:
    out = ok(naiad_cli("runs", "download", data.run_art, "notes.txt", env=env, cwd=tmp_path))
    assert (tmp_path / "notes.txt").read_text() == "hello artifacts\n"
    assert "1 file(s)" in out

    out = ok(naiad_cli("runs", "download", data.run_art, "model", env=env, cwd=tmp_path))
    assert (tmp_path / "model" / "weights.bin").read_bytes() == b"\x00\x01" * 5000
    assert (tmp_path / "model" / "config" / "notes.txt").read_text() == "hello artifacts\n"
    assert "2 file(s)" in out

    dest = tmp_path / "elsewhere" / "w.bin"
    ok(naiad_cli("runs", "download", data.run_art, "model/weights.bin", "-o", str(dest), env=env))
    assert dest.read_bytes() == b"\x00\x01" * 5000

    missing = one_sentence_error(
        naiad_cli("runs", "download", data.run_art, "nope.txt", env=env, cwd=tmp_path)
    )
    assert "nope.txt" in missing
    assert not (tmp_path / "nope.txt").exists()


# -- errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args",
    [
        ["runs", "show", "f" * 32],
        ["runs", "show", "ffffffff"],
        ["runs", "export", "f" * 32],
        ["runs", "artifacts", "f" * 32],
        ["runs", "compare", "f" * 32, "e" * 32],
    ],
)
def test_unknown_run_id(env: dict[str, str], data: Data, args: list[str], tmp_path: Path) -> None:
    line = one_sentence_error(naiad_cli(*args, env=env, cwd=tmp_path))
    assert "No run" in line


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--filter", "metrics.acc >> 1", "filter"),
        ("--filter", "bogus = 1", "Unknown field"),
        ("--order-by", "bogus DESC", "Unknown field"),
        ("--experiment", "no-such-experiment", "no-such-experiment"),
    ],
)
def test_runs_ls_bad_input(
    env: dict[str, str], data: Data, flag: str, value: str, expected: str
) -> None:
    line = one_sentence_error(naiad_cli("runs", "ls", flag, value, env=env))
    assert expected.lower() in line.lower()


@pytest.mark.parametrize(
    "args",
    [
        ["runs", "ls"],
        ["runs", "show", "f" * 32],
        ["experiments", "ls", "--json"],
        ["experiments", "create", "x"],
    ],
)
def test_server_not_running(tmp_path: Path, args: list[str]) -> None:
    env = {
        **os.environ,
        "NAIAD_HOME": str(tmp_path / "home"),
        "NAIAD_URL": f"http://127.0.0.1:{free_port()}",
    }
    result = naiad_cli(*args, env=env)
    line = one_sentence_error(result)
    assert "Cannot reach the Naiad server" in line
    assert result.stdout == ""
