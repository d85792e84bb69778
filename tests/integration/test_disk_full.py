"""A full disk under the server: 507 with a sentence, nothing half-written, and back to
normal once space is freed, on SQLite and PostgreSQL.

Each test runs twice: on a real, small tmpfs holding the Naiad home where this machine
lets the test mount one (root with CAP_SYS_ADMIN, as in CI), and with ENOSPC raised
where the operating system and the database driver would raise it (everywhere).
"""

import errno
import sqlite3
from collections.abc import Iterator
from contextlib import nullcontext
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import psycopg.errors
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event

from naiad.core.status import Status
from naiad.server.app import create_app
from naiad.server.state import AppState
from naiad.services import jobs as job_service
from naiad.settings import Settings
from naiad.store import jobs
from naiad.store.artifacts import local
from naiad.store.db import transaction
from naiad.store.tables import utcnow
from naiad.testing.disk import Ballast, small_filesystem
from naiad.testing.jobs import source_tarball

_WRITES = ("INSERT", "UPDATE", "DELETE")


class FullDisk:
    """Switches the disk under one app between full and not."""

    real: bool

    def fill(self) -> None: ...

    def free(self, nbytes: int | None = None) -> None: ...


class TmpfsDisk(FullDisk):
    real = True

    def __init__(self, mount: Path) -> None:
        self.ballast = Ballast(mount / "ballast")

    def fill(self) -> None:
        self.ballast.fill()

    def free(self, nbytes: int | None = None) -> None:
        self.ballast.free(nbytes)


class InjectedDisk(FullDisk):
    """ENOSPC from a file write, and the driver's disk-full error from a write statement."""

    real = False

    def __init__(self, app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
        self.full = False
        engine = app.state.naiad.engine
        postgres = engine.dialect.name == "postgresql"

        def refuse(cursor: Any, statement: str, parameters: Any, context: Any) -> None:
            if self.full and statement.lstrip().upper().startswith(_WRITES):
                if postgres:
                    raise psycopg.errors.DiskFull("could not extend file: No space left on device")
                error = sqlite3.OperationalError("database or disk is full")
                error.sqlite_errorcode = 13  # type: ignore[attr-defined]
                raise error

        for name in ("do_execute", "do_executemany", "do_execute_no_params"):
            event.listen(engine, name, refuse)
        copy = local.copy_stream

        def copy_until_full(src: BinaryIO, dst: BinaryIO) -> int:
            if not self.full:
                return copy(src, dst)
            dst.write(src.read(4096))  # part of it lands, as on a real disk
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(local, "copy_stream", copy_until_full)

    def fill(self) -> None:
        self.full = True

    def free(self, nbytes: int | None = None) -> None:
        self.full = False


Served = tuple[TestClient, FullDisk, Settings]


def app_state(api: TestClient) -> AppState:
    return api.app.state.naiad  # type: ignore[attr-defined]


@pytest.fixture(params=["tmpfs", "injected"])
def served(
    request: pytest.FixtureRequest,
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Served]:
    """An app (no background loops) whose home sits on a disk the test can fill."""
    tmpfs = request.param == "tmpfs"
    mounted = small_filesystem(tmp_path / "fs", size_mb=24) if tmpfs else nullcontext(None)
    with mounted as mount:
        if tmpfs and mount is None:
            pytest.skip("mounting a tmpfs is not permitted here; the injected run covers it")
        if mount is not None:
            settings = settings.model_copy(update={"home": mount / "home"})
        app = create_app(settings)
        disk: FullDisk = TmpfsDisk(mount) if mount else InjectedDisk(app, monkeypatch)
        token = app.state.naiad.token
        try:
            yield TestClient(app, headers={"authorization": f"Bearer {token}"}), disk, settings
        finally:
            disk.free()
            app.state.naiad.engine.dispose()


def _run_with_metrics(api: TestClient, points: int = 2000) -> str:
    run_id = api.post("/api/v1/runs", json={"experiment": "full"}).json()["id"]
    body = {
        "batch_id": "first",
        "metrics": {
            "loss": {
                "steps": list(range(points)),
                "timestamps": [1.0e9] * points,
                "values": [1.0 / (i + 1) for i in range(points)],
            }
        },
    }
    assert api.post(f"/api/v1/runs/{run_id}/metrics", json=body).status_code == 200
    return run_id


def _assert_full(response: httpx.Response, settings: Settings, where: str) -> None:
    assert response.status_code == 507, response.text
    body = response.json()
    assert body["error"] == "insufficient_storage"
    if settings.database_url and where == "database":
        assert "PostgreSQL server ran out of disk space" in body["message"]
    else:
        assert "is full" in body["message"] and "`naiad gc`" in body["message"]
        assert str(settings.home) in body["message"]


def test_upload_on_a_full_disk_is_507_and_leaves_no_part(served: Served) -> None:
    api, disk, settings = served
    run_id = _run_with_metrics(api)
    disk.fill()
    data = bytes(range(256)) * 4096  # 1 MiB
    refused = api.put(f"/api/v1/runs/{run_id}/artifacts/model/weights.bin", content=data)
    _assert_full(refused, settings, "artifacts")
    assert str(settings.home / "artifacts") in refused.json()["message"]
    assert not (settings.home / "artifacts" / "runs" / run_id).exists()  # no part, no folders
    assert api.get(f"/api/v1/runs/{run_id}/artifacts").json() == []

    disk.free()
    stored = api.put(f"/api/v1/runs/{run_id}/artifacts/model/weights.bin", content=data)
    assert stored.status_code == 201, stored.text
    assert api.get(f"/api/v1/runs/{run_id}/artifacts/model/weights.bin").content == data


def test_writes_are_507_earlier_data_stays_and_delete_works_once_space_is_freed(
    served: Served,
) -> None:
    api, disk, settings = served
    run_id = _run_with_metrics(api, points=100_000)  # 2.4 MB of columns
    if disk.real and settings.database_url:
        pytest.skip("PostgreSQL keeps its data on its own server's disk, not this tmpfs")
    disk.fill()
    point = {"steps": [5000], "timestamps": [1.0e9], "values": [0.1]}
    more = {"batch_id": "second", "metrics": {"loss": point}}
    _assert_full(api.post(f"/api/v1/runs/{run_id}/metrics", json=more), settings, "database")
    _assert_full(api.delete(f"/api/v1/runs/{run_id}"), settings, "database")
    _assert_full(api.post("/api/v1/runs", json={"experiment": "full"}), settings, "database")

    kept = api.get(f"/api/v1/runs/{run_id}/metrics/loss").json()  # reads go on
    assert len(kept["steps"]) == 100_000 and kept["values"][0] == 1.0

    # A delete writes little (not the run's pages zeroed), so half a megabyte is room enough
    # for a run whose metrics take more; and the failures above left no connection stuck.
    disk.free(512 * 1024)
    assert api.delete(f"/api/v1/runs/{run_id}").status_code == 204
    assert api.get(f"/api/v1/runs/{run_id}").status_code == 404
    disk.free()
    assert api.post("/api/v1/runs", json={"experiment": "full"}).status_code == 201


def _finished_job(api: TestClient, settings: Settings, name: str, days_ago: float) -> Path:
    """A job that ended ``days_ago``, with the files its supervisor leaves behind."""
    tarball = source_tarball({"train.py": "print('hi')\n"})
    source = api.put("/api/v1/sources", content=tarball).json()["source_uri"]
    job = {"name": name, "source_uri": source, "entrypoint": "train.py"}
    assert api.post("/api/v1/jobs", json=job).status_code == 201
    state = app_state(api)
    with transaction(state.sessions) as session:
        row = jobs.get_row(session, name)
        job_service.end(session, row, Status.COMPLETED, "Training finished.")
        row.ended_at = utcnow() - timedelta(days=days_ago)
    root = settings.home / "jobs" / name
    for rel, size in (("model/model.safetensors", 3 << 20), ("logs/job.log", 100)):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x" * size)
    (root / "state.json").write_text('{"phase": "succeeded"}')
    return root


def test_gc_frees_space_on_a_full_disk(served: Served) -> None:
    api, disk, settings = served
    root = _finished_job(api, settings, "old-job", days_ago=10)
    run_id = _run_with_metrics(api)
    disk.fill()
    freed = api.post("/api/v1/admin/gc", json={"older_than_days": 7})
    assert freed.status_code == 200, freed.text
    result = freed.json()
    assert result["work_dirs"] == 1 and result["work_dir_bytes"] >= 3 << 20
    assert result["freed_bytes"] >= result["work_dir_bytes"]
    assert not (root / "model").exists()
    assert (root / "logs" / "job.log").exists() and (root / "state.json").exists()
    if disk.real and not settings.database_url:  # the room gc made is real: writes work again
        assert api.delete(f"/api/v1/runs/{run_id}").status_code == 204
