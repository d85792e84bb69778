"""Deleting a run with all it owns, `gc` and the hourly retention pass, on every backend."""

import os
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from naiad.core.status import Status
from naiad.server.app import create_app
from naiad.server.controller.janitor import Janitor
from naiad.server.state import AppState
from naiad.services import jobs as job_service
from naiad.settings import Settings
from naiad.store import jobs
from naiad.store.db import sqlite_path, transaction
from naiad.store.tables import utcnow
from naiad.testing.jobs import source_tarball


@pytest.fixture
def served(settings: Settings) -> Iterator[TestClient]:
    """The real app without its background loops: jobs stay as the test leaves them."""
    app = create_app(settings)
    token = app.state.naiad.token
    yield TestClient(app, headers={"authorization": f"Bearer {token}"})
    app.state.naiad.engine.dispose()


def _state(api: TestClient) -> AppState:
    return api.app.state.naiad  # type: ignore[attr-defined]


def _submit(api: TestClient, name: str) -> dict:
    tarball = source_tarball({"train.py": "print('hi')\n"})
    source = api.put("/api/v1/sources", content=tarball).json()["source_uri"]
    created = api.post(
        "/api/v1/jobs", json={"name": name, "source_uri": source, "entrypoint": "train.py"}
    )
    assert created.status_code == 201, created.text
    return created.json()


def _end(api: TestClient, name: str, days_ago: float) -> None:
    """What the scheduler records when the job's supervisor reports its end, backdated."""
    with transaction(_state(api).sessions) as session:
        row = jobs.get_row(session, name)
        job_service.end(session, row, Status.COMPLETED, "Training finished.")
        row.ended_at = utcnow() - timedelta(days=days_ago)


def _work_dir(api: TestClient, name: str) -> Path:
    """The files a finished job's supervisor leaves in its directory."""
    root = _state(api).settings.home / "jobs" / name
    files = {
        "model/model.safetensors": b"w" * 200_000,
        "input/data/train/part-0": b"d" * 100_000,
        "checkpoints/step-10.pt": b"c" * 50_000,
        ".naiad-home/spool/x/1-b.json": b"{}",
        "logs/job.log": b"epoch 1 loss 0.5\n",
        "state.json": b'{"phase": "succeeded"}',
        "spec.json": b"{}",
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def _log(api: TestClient, run_id: str, batch_id: str, n: int = 100) -> None:
    columns = {"steps": list(range(n)), "timestamps": [1.0e9] * n, "values": [0.5] * n}
    body = {"batch_id": batch_id, "metrics": {"loss": columns}}
    assert api.post(f"/api/v1/runs/{run_id}/metrics", json=body).status_code == 200


# -- deleting a run ---------------------------------------------------------------------------
def test_delete_run_takes_its_metrics_artifacts_and_finished_job(served: TestClient) -> None:
    api, state = served, _state(served)
    job = _submit(api, "digits")
    run_id = job["run_id"]
    _log(api, run_id, "b1")
    assert api.put(f"/api/v1/runs/{run_id}/artifacts/plot.png", content=b"png").status_code == 201
    _end(api, "digits", days_ago=0)
    root = _work_dir(api, "digits")
    state.artifacts.put_bytes("jobs/digits/output/model.tar.gz", b"model")  # the supervisor's
    other = api.post("/api/v1/runs", json={"experiment": "keep"}).json()["id"]
    assert api.put(f"/api/v1/runs/{other}/artifacts/a.txt", content=b"a").status_code == 201

    assert api.delete(f"/api/v1/runs/{run_id}").status_code == 204
    assert api.get(f"/api/v1/runs/{run_id}").status_code == 404
    assert api.get(f"/api/v1/runs/{run_id}/metrics/loss").status_code == 404
    assert api.get("/api/v1/jobs/digits").status_code == 404
    assert not state.artifacts.exists(f"runs/{run_id}")
    assert not state.artifacts.exists("jobs/digits")
    assert not root.exists()
    assert api.get(f"/api/v1/runs/{other}/artifacts/a.txt").content == b"a"  # others untouched

    # The name is free again, and nothing of the old job makes the new one look finished.
    again = _submit(api, "digits")
    assert again["status"] == "Pending" and again["run_id"] != run_id


def test_delete_refuses_a_run_whose_job_is_still_active(served: TestClient) -> None:
    job = _submit(served, "busy")
    refused = served.delete(f"/api/v1/runs/{job['run_id']}")
    assert refused.status_code == 409
    message = refused.json()["message"]
    assert "training job 'busy', which is Pending" in message
    assert "`naiad jobs stop busy`" in message
    assert served.get(f"/api/v1/runs/{job['run_id']}").status_code == 200
    assert served.get("/api/v1/jobs/busy").json()["status"] == "Pending"


def test_delete_unknown_run_is_404(served: TestClient) -> None:
    missing = served.delete("/api/v1/runs/0123456789abcdef0123456789abcdef")
    assert missing.status_code == 404
    assert "No run with id" in missing.json()["message"]


# -- gc ---------------------------------------------------------------------------------------
def test_gc_clears_what_is_old_and_finished_and_keeps_the_rest(served: TestClient) -> None:
    api, state = served, _state(served)
    home = state.settings.home
    for name, days_ago in (("old", 10), ("recent", 1)):
        _submit(api, name)
        _end(api, name, days_ago)
        _work_dir(api, name)
    _submit(api, "queued")
    _work_dir(api, "queued")  # not finished: kept whatever its age
    orphan = home / "jobs" / "deleted-long-ago"
    (orphan / "model").mkdir(parents=True)
    (orphan / "model" / "w").write_bytes(b"o" * 10_000)
    long_ago = time.time() - 8 * 86400
    os.utime(orphan, (long_ago, long_ago))  # its job was deleted, before deleting cleaned up

    run_id = api.post("/api/v1/runs", json={"experiment": "spools"}).json()["id"]
    _log(api, run_id, "sent")
    spool = home / "spool"
    batch = {
        "batch_id": "x",
        "metrics": {"loss": {"steps": [1], "timestamps": [1.0], "values": [1.0]}},
    }
    for rel in (f"{run_id}/001-sent.json", f"{run_id}/002-unsent.json", "f" * 32 + "/001-b.json"):
        (spool / rel).parent.mkdir(parents=True, exist_ok=True)
        (spool / rel).write_bytes(orjson.dumps(batch))
    state.artifacts.put_bytes("runs/" + "e" * 32 + "/artifacts/left.bin", b"l" * 5000)

    result = api.post("/api/v1/admin/gc", json={"older_than_days": 7}).json()
    assert result["work_dirs"] == 2  # "old" cleared, the deleted job's directory removed
    assert result["work_dir_bytes"] >= 350_000 + 10_000
    assert result["spool_files"] == 2 and result["spool_waiting"] == 1
    assert result["orphan_bytes"] == 5000
    assert result["vacuum_bytes"] is None and result["problems"] == []
    parts = ("work_dir_bytes", "orphan_bytes", "spool_bytes", "wal_bytes")
    assert result["freed_bytes"] == sum(result[k] for k in parts)

    old = home / "jobs" / "old"
    assert sorted(p.name for p in old.iterdir()) == ["logs", "spec.json", "state.json"]
    logs = api.get("/api/v1/jobs/old/logs").json()
    assert logs["text"] == "epoch 1 loss 0.5\n"  # `naiad jobs logs` still works
    for kept in ("recent", "queued"):
        assert (home / "jobs" / kept / "model" / "model.safetensors").exists()
    assert not orphan.exists()
    assert sorted(p.name for p in (spool / run_id).iterdir()) == ["002-unsent.json"]
    assert not (spool / ("f" * 32)).exists()
    assert not state.artifacts.exists("runs/" + "e" * 32)
    if (db := sqlite_path(state.engine)) is not None:
        # checkpointed and cut: what is in it since is this very call's audit event
        assert db.with_name(db.name + "-wal").stat().st_size <= 4 * 4096 + 1000

    again = api.post("/api/v1/admin/gc", json={"older_than_days": 7}).json()
    assert again["work_dirs"] == 0 and again["spool_files"] == 0


def test_gc_defaults_to_the_retention_setting_and_vacuums(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"job_retention_days": 3}))
    api = TestClient(app, headers={"authorization": f"Bearer {app.state.naiad.token}"})
    try:
        for name, days_ago in (("four-days", 4), ("two-days", 2)):
            _submit(api, name)
            _end(api, name, days_ago)
            _work_dir(api, name)
        big = api.post("/api/v1/runs", json={"experiment": "big"}).json()["id"]
        _log(api, big, "b", n=100_000)
        assert api.delete(f"/api/v1/runs/{big}").status_code == 204
        result = api.post("/api/v1/admin/gc", json={"vacuum": True}).json()
        assert result["older_than_days"] == 3 and result["work_dirs"] == 1
        assert not (settings.home / "jobs" / "four-days" / "model").exists()
        assert (settings.home / "jobs" / "two-days" / "model").exists()
        assert result["problems"] == [] and result["vacuum_bytes"] is not None
        if sqlite_path(app.state.naiad.engine) is not None:
            assert result["vacuum_bytes"] > 1_000_000  # the deleted run's pages went back
        assert api.post("/api/v1/admin/gc", json={"older_than_days": -1}).status_code == 422
    finally:
        app.state.naiad.engine.dispose()


def test_the_janitor_applies_the_retention_when_due(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NAIAD_JOB_RETENTION_DAYS", "2")
    configured = Settings(home=settings.home, database_url=settings.database_url, warm_start=False)
    assert configured.job_retention_days == 2
    app = create_app(configured)
    api = TestClient(app, headers={"authorization": f"Bearer {app.state.naiad.token}"})
    try:
        _submit(api, "finished")
        _end(api, "finished", days_ago=3)
        root = _work_dir(api, "finished")
        Janitor(app.state.naiad).tick()  # its first pass waits a few minutes after start
        assert (root / "model").exists()
        Janitor(app.state.naiad, first_after_s=0).tick()
        assert not (root / "model").exists() and (root / "logs" / "job.log").exists()
    finally:
        app.state.naiad.engine.dispose()
