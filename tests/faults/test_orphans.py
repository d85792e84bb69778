"""Leftovers: endpoint replicas and notebook servers outlive a killed server so that a
restarted one re-attaches them, but not forever. Each has a guard that ends it once no
server has kept its home for the grace period, or at once when the home is deleted."""

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import naiad
from naiad.core.home import HomeLayout
from naiad.testing.endpoints import kill_replicas, replica_pids, scale_model
from naiad.testing.live import LiveServer
from tests.conftest import need

pytestmark = [pytest.mark.faults, pytest.mark.slow]

GRACE_S = 8.0  # past half of it plus a restart (a cold start takes 2 to 3 s on 2 busy cores)


def notebook_pid(home: Path, name: str) -> int:
    record = HomeLayout(home).notebooks / name / "notebook.json"
    return int(json.loads(record.read_text())["pid"])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def eventually(check: Callable[[], bool], within: float, what: str) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < within, f"{what} within {within}s"
        time.sleep(0.1)
    return time.monotonic() - started


def test_orphans_wait_for_a_restart_then_end_and_a_deleted_home_ends_them_at_once(
    tmp_path: Path,
) -> None:
    import importlib.util

    need(importlib.util.find_spec("jupyterlab") is not None, "JupyterLab (naiad[notebooks])")
    home = tmp_path / "home"
    server = LiveServer(home=home, env={"NAIAD_ORPHAN_GRACE_S": str(GRACE_S)})
    server.start()
    try:
        client = naiad.Client(url=server.url, token=server.token)
        client.models.register("scale", path=scale_model(tmp_path / "scale", 2.0))
        client.endpoints.deploy("kept", model="scale", wait=True, timeout=120)
        client.notebooks.create("lab", wait=True, timeout=120)
        [replica] = replica_pids(home)
        lab = notebook_pid(home, "lab")

        # A server back within the grace re-attaches them: nothing restarted.
        server.kill()
        time.sleep(GRACE_S / 2)
        server.start()
        time.sleep(GRACE_S)  # past the first grace: the guards saw the new server
        assert alive(replica) and alive(lab)
        assert replica_pids(home) == [replica] and notebook_pid(home, "lab") == lab
        assert client.endpoints.predict("kept", [[1.0, 2.0, 3.0, 4.0]]).tolist() == [
            [2.0, 4.0, 6.0, 8.0]
        ]

        # No server for longer than the grace: both end.
        server.kill()
        took = eventually(lambda: not alive(replica) and not alive(lab), GRACE_S + 15, "ended")
        assert took >= GRACE_S - 1  # not before their grace
        log = (home / "endpoints").rglob("replica.log")
        assert any("no Naiad server has kept the home" in p.read_text() for p in log)

        # A deleted home ends them at once, whatever the grace.
        server.start()  # starts the endpoint's replica and the notebook anew
        eventually(lambda: len(replica_pids(home)) == 1, 60, "the replica restarted")
        eventually(lambda: alive(notebook_pid(home, "lab")), 60, "the notebook restarted")
        replica, lab = replica_pids(home)[0], notebook_pid(home, "lab")
        server.kill()
        shutil.rmtree(home)
        eventually(lambda: not alive(replica) and not alive(lab), 15, "ended with the home")
    finally:
        server.stop()
        if home.exists():
            kill_replicas(home)
