"""`naiad backup` while the server runs and logs, `naiad restore` into a fresh home, and
everything read back through the restored server: runs, metrics, artifacts, models, an
endpoint that serves again. On SQLite + files, and on PostgreSQL + S3."""

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import naiad
from naiad.testing import postgres
from naiad.testing.endpoints import kill_replicas, scale_model
from naiad.testing.live import LiveServer
from naiad.testing.s3 import S3Server
from tests.conftest import need


@dataclass
class Home:
    """Where a home keeps things: its directory, and for the scale-out kind its database
    and bucket prefix (a restore gets fresh ones of each)."""

    root: Path
    env: dict[str, str]

    def environ(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("NAIAD_")}
        return {**base, "NAIAD_HOME": str(self.root), "COLUMNS": "200", **self.env}


def cli(home: Home, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "naiad.cli.main", *args],
        env=home.environ(),
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.s3])]
)
def homes(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Home, Home]]:
    """A home to back up and a fresh one to restore into, of the same kind."""
    if request.param == "sqlite":
        yield Home(tmp_path / "home", {}), Home(tmp_path / "restored", {})
        return
    admin = postgres.admin_url()
    need(admin is not None, f"PostgreSQL ({postgres.ENV})")
    assert admin is not None
    s3: S3Server = request.getfixturevalue("s3_server")
    with ExitStack() as stack:
        made = [stack.enter_context(postgres.scratch_database(admin)) for _ in range(2)]
        yield tuple(  # type: ignore[misc]
            Home(
                tmp_path / name,
                {
                    "NAIAD_DATABASE_URL": url,
                    "NAIAD_ARTIFACT_URI": s3.fresh_uri(),
                    "NAIAD_S3_ENDPOINT_URL": s3.endpoint_url,
                },
            )
            for name, url in zip(("home", "restored"), made, strict=True)
        )


def started(home: Home) -> LiveServer:
    server = LiveServer(home=home.root, env=home.env)
    server.start()
    return server


def test_backup_while_logging_then_restore_reads_everything_back(
    homes: tuple[Home, Home], tmp_path: Path
) -> None:
    source, fresh = homes
    server = started(source)
    try:
        client = naiad.Client(url=server.url, token=server.token)
        with naiad.start_run(experiment="kept", name="finished", client=client) as run:
            run.log_params({"lr": 0.01, "arch": "cnn"})
            for step in range(500):
                run.log_metric("loss", 1.0 / (step + 1), step=step)
            (tmp_path / "weights.bin").write_bytes(os.urandom(300_000))
            run.log_artifact(tmp_path / "weights.bin")
        client.models.register("scale", path=scale_model(tmp_path / "scale", 3.0))
        client.models.set_alias("scale", "prod", 1)
        client.endpoints.deploy("doubler", model="scale@prod", wait=True, timeout=120)

        # A run that keeps logging while the backup is taken: the snapshot holds a prefix.
        live_run = client.runs.create(experiment="kept", name="live")
        stop = threading.Event()

        def keep_logging() -> None:
            step = 0
            while not stop.is_set():
                batch = {"steps": [step], "timestamps": [1.0 + step], "values": [float(step)]}
                client.runs.log_batch(
                    live_run.id, {"batch_id": f"b{step}", "metrics": {"x": batch}}
                )
                step += 1

        logger = threading.Thread(target=keep_logging)
        logger.start()
        try:
            taken = cli(source, "backup", str(tmp_path / "backup"), "--json")
        finally:
            stop.set()
            logger.join()
        assert taken.returncode == 0, taken.stderr
        report = json.loads(taken.stdout)
        assert report["rows"]["runs"] == 2 and report["rows"]["model_versions"] == 1
        assert report["files"] >= 2  # the weights, the model's files
        kept = client.runs.metric_history(run.id, "loss")
    finally:
        server.stop()
        kill_replicas(source.root)

    backup = tmp_path / "backup"
    assert (backup / "manifest.json").is_file()
    assert oct((backup).stat().st_mode & 0o777) == "0o700"
    listed = (backup / "artifacts.sha256").read_text()
    assert f"runs/{run.id}/artifacts/weights.bin" in listed

    put_back = cli(fresh, "restore", str(backup))
    assert put_back.returncode == 0, put_back.stderr
    assert "Restored" in put_back.stdout and "2 runs, 1 model, 1 model version" in put_back.stdout

    restored = started(fresh)
    try:
        client = naiad.Client(url=restored.url, token=restored.token)
        assert restored.token == server.token  # scripts keep their token
        runs = {r.name: r for r in client.runs.search(experiment="kept")[0]}
        assert set(runs) == {"finished", "live"}
        again = client.runs.get(runs["finished"].id)
        assert again.params == {"lr": 0.01, "arch": "cnn"}
        back = client.runs.metric_history(again.id, "loss")
        assert back.total_points == kept.total_points == 500
        assert np.array_equal(back.values, kept.values) and np.array_equal(back.steps, kept.steps)
        assert again.artifact_uri.startswith(fresh.env.get("NAIAD_ARTIFACT_URI", "file://"))
        got = client.runs.download_artifact(again.id, "weights.bin", tmp_path / "back.bin")
        assert got.read_bytes() == (tmp_path / "weights.bin").read_bytes()
        prefix = client.runs.metric_history(runs["live"].id, "x").steps
        assert list(prefix) == list(range(len(prefix))) and len(prefix) > 0
        assert client.models.get("scale@prod").version == 1
        endpoint = client.endpoints.get("doubler")  # its replica starts in the new home
        deadline = time.monotonic() + 120
        while sum(r.healthy for v in endpoint.refresh().variants for r in v.live) == 0:
            assert time.monotonic() < deadline, endpoint.refresh()
            time.sleep(0.2)
        assert np.allclose(endpoint.predict([[1.0, 2.0, 3.0, 4.0]]), [[3.0, 6.0, 9.0, 12.0]])
    finally:
        restored.stop()
        kill_replicas(fresh.root)


def test_restore_refuses_a_damaged_backup_or_a_home_in_use(tmp_path: Path) -> None:
    source = Home(tmp_path / "home", {})
    server = started(source)
    try:
        client = naiad.Client(url=server.url, token=server.token)
        with naiad.start_run(experiment="e", client=client) as run:
            (tmp_path / "a.txt").write_text("kept")
            run.log_artifact(tmp_path / "a.txt")
        assert cli(source, "backup", str(tmp_path / "b")).returncode == 0
        refused = cli(source, "backup", str(tmp_path / "b"))
        assert "already exists; back up into a new directory" in refused.stderr
        in_use = cli(source, "restore", str(tmp_path / "b"))
        assert in_use.returncode != 0 and "restore into a fresh home" in in_use.stderr
    finally:
        server.stop()

    not_fresh = cli(source, "restore", str(tmp_path / "b"))
    assert "already holds Naiad's tables; restore into a fresh home" in not_fresh.stderr
    again = started(source)
    try:
        assert naiad.Client(url=again.url, token=again.token).runs.get(run.id).name == run.name
    finally:
        again.stop()

    damaged = tmp_path / "b" / "artifacts" / f"runs/{run.id}/artifacts/a.txt"
    damaged.write_text("changed")
    fresh = Home(tmp_path / "fresh", {})
    refused = cli(fresh, "restore", str(tmp_path / "b"))
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert (
        "does not match its checksum" in refused.stderr and "nothing was restored" in refused.stderr
    )
    assert not (fresh.root / "naiad.db").exists()

    (tmp_path / "b" / "manifest.json").unlink()
    incomplete = cli(fresh, "restore", str(tmp_path / "b"))
    assert "has no manifest.json" in incomplete.stderr
