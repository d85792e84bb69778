"""The server's home: owner-only, no secret in a log, one server per home, never another
home's server mistaken for ours, `naiad server status|stop`, and a deleted home noticed."""

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import naiad
from naiad.executors.supervisor.workdir import proc_alive
from naiad.testing.endpoints import scale_model
from naiad.testing.live import LiveServer, free_port


def cli(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("NAIAD_")}
    return subprocess.run(
        [sys.executable, "-m", "naiad.cli.main", *args],
        env={**environ, "NAIAD_HOME": str(home), **env},
        capture_output=True,
        text=True,
        timeout=90,
    )


def start_local(home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """What the quickstart and the SDK do: find this home's server or start one detached."""
    code = "from naiad.sdk.local_server import ensure_server; print(ensure_server())"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("NAIAD_")}
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**environ, "NAIAD_HOME": str(home), **env},
        capture_output=True,
        text=True,
        timeout=90,
    )


@pytest.fixture
def homes(tmp_path: Path) -> Iterator[list[Path]]:
    """Homes whose servers are stopped at the end, whatever the test did."""
    made: list[Path] = []
    yield made
    for home in made:
        cli(home, "server", "stop")


def test_home_is_owner_only_and_no_file_but_the_token_file_holds_the_token(
    tmp_path: Path, homes: list[Path]
) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    os.chmod(home, 0o755)
    (home / "config.toml").write_text("")
    os.chmod(home / "config.toml", 0o644)
    homes.append(home)
    port = str(free_port())
    out = start_local(home, NAIAD_PORT=port)
    assert out.returncode == 0, out.stderr
    url = out.stdout.strip()
    token = (home / "admin_token").read_text().strip()
    headers = {"authorization": f"Bearer {token}"}
    created = httpx.post(f"{url}/api/v1/experiments", json={"name": "perm"}, headers=headers)
    assert created.status_code == 201, created.text
    source = tmp_path / "source"  # a job's code, readable by all where it was written
    source.mkdir()
    (source / "train.py").write_text(
        "from naiad import runtime\nruntime.context().log_metrics({'loss': 1.0}, step=0)\n"
    )
    os.chmod(source / "train.py", 0o644)
    job = naiad.Client(url=url, token=token).training_jobs.create(
        name="perm", entrypoint="train.py", source_dir=source
    )
    ended = job.wait(timeout=120)
    assert ended.status == "Completed", ended.status_reason
    run = naiad.Client(url=url, token=token).runs.get(ended.run_id)  # its metrics came in
    assert run.metrics["loss"].value == 1.0

    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for path in home.rglob("*"):
        mode = stat.S_IMODE(path.lstat().st_mode)
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}: others can read it"
        if path.is_file() and path.name != "admin_token":
            assert token.encode() not in path.read_bytes(), f"{path} holds the admin token"
    log = (home / "server.log").read_text()
    assert "owner-only" in log and "admin_token" in log  # said once, and how to sign in

    status = cli(home, "server", "status")
    assert status.returncode == 0, status.stderr
    assert f"{url}/?token={token}" in status.stdout  # the owner's terminal gets the link
    restarted = cli(home, "server", "stop")
    assert restarted.returncode == 0 and "Stopped the server" in restarted.stdout
    assert start_local(home, NAIAD_PORT=port).returncode == 0
    assert (home / "server.log").read_text().count("owner-only") == 1  # tightened once


def test_one_server_per_home_and_its_record_survives_a_second_try(
    tmp_path: Path, homes: list[Path]
) -> None:
    server = LiveServer(home=tmp_path / "home")
    server.start()
    try:
        record = json.loads((server.home / "server.json").read_text())
        for port in (str(server.port), str(free_port())):  # same port, then another
            second = cli(server.home, "server", "--port", port)
            assert second.returncode == 1
            assert "Another Naiad server" in second.stderr and "Traceback" not in second.stderr
            assert json.loads((server.home / "server.json").read_text()) == record
        assert httpx.get(f"{server.url}/api/v1/health").status_code == 200
    finally:
        server.stop()
    assert not (server.home / "server.json").exists()  # a graceful stop cleans up its record


def test_a_server_of_another_home_on_our_port_is_left_alone(
    tmp_path: Path, homes: list[Path]
) -> None:
    theirs = LiveServer(home=tmp_path / "theirs")
    theirs.start()
    try:
        ours = tmp_path / "ours"
        homes.append(ours)
        ours.mkdir()
        (ours / "admin_token").write_text("not-theirs")
        lost = cli(ours, "experiments", "ls", NAIAD_PORT=str(theirs.port))
        assert lost.returncode == 1 and "another Naiad home" in lost.stderr
        out = start_local(ours, NAIAD_PORT=str(theirs.port))
        assert out.returncode == 0, out.stderr
        url = out.stdout.strip()
        assert url != theirs.url and "keeps another Naiad home" in out.stderr
        theirs_id = (theirs.home / "home_id").read_text().strip()
        said = httpx.get(f"{url}/api/v1/health").json()["home"]
        assert said == (ours / "home_id").read_text().strip() != theirs_id
        token = (ours / "admin_token").read_text().strip()
        listed = httpx.get(
            f"{url}/api/v1/experiments", headers={"authorization": f"Bearer {token}"}
        )
        assert listed.status_code == 200
    finally:
        theirs.stop()


def test_server_status_and_stop(tmp_path: Path, homes: list[Path]) -> None:
    home = tmp_path / "home"
    homes.append(home)
    idle = cli(home, "server", "status", "--json")
    assert idle.returncode == 1 and json.loads(idle.stdout)["running"] is False
    out = start_local(home, NAIAD_PORT=str(free_port()))
    assert out.returncode == 0, out.stderr
    running = json.loads(cli(home, "server", "status", "--json").stdout)
    assert running["running"] and running["healthy"] and running["url"] == out.stdout.strip()
    stopped = cli(home, "server", "stop")
    assert stopped.returncode == 0, stopped.stderr
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{running['url']}/api/v1/health", timeout=2)
    assert cli(home, "server", "status").returncode == 1
    assert "No Naiad server is running" in cli(home, "server", "stop").stdout


def logs(client: naiad.Client) -> str:
    return client.training_jobs.read_logs("sleeper").text


def test_a_deleted_home_fails_health_refuses_writes_and_ends_its_jobs_and_replicas(
    tmp_path: Path,
) -> None:
    server = LiveServer(home=tmp_path / "home", env={"NAIAD_WARM_START": "false"})
    server.start()
    headers = {"authorization": f"Bearer {server.token}"}
    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text(
        "import os, time\nprint(os.getpid(), flush=True)\ntime.sleep(600)\n"
    )
    try:
        made = httpx.post(f"{server.url}/api/v1/experiments", json={"name": "a"}, headers=headers)
        assert made.status_code == 201
        with naiad.Client(server.url, server.token) as client:
            client.models.register("scale", path=scale_model(tmp_path / "model", 2.0))
            endpoint = client.endpoints.deploy("e", model="scale:1", wait=True, timeout=120)
            replica = endpoint.refresh().variants[0].live[0].pid
            client.training_jobs.create("sleeper", "train.py", source)
            deadline = time.monotonic() + 60
            while not (pids := re.findall(r"^(\d+)$", logs(client), re.MULTILINE)):
                assert time.monotonic() < deadline, logs(client)
                time.sleep(0.2)
        pid = int(pids[0])
        assert replica is not None
        shutil.rmtree(server.home)
        deadline = time.monotonic() + 10
        health = httpx.get(f"{server.url}/api/v1/health")
        while health.status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.2)
            health = httpx.get(f"{server.url}/api/v1/health")
        assert health.status_code == 503 and "was deleted" in health.json()["message"]
        write = httpx.post(f"{server.url}/api/v1/experiments", json={"name": "b"}, headers=headers)
        assert write.status_code == 503
        assert "deleted or replaced" in write.json()["message"]
        url = f"{server.url}/endpoints/e/invocations"
        invoked = httpx.post(url, json={"inputs": [[1, 2, 3, 4]]}, headers=headers)
        assert invoked.status_code == 503 and "deleted or replaced" in invoked.json()["message"]
        deadline = time.monotonic() + 30
        while proc_alive(pid):  # the job's supervisor ended it with its directory
            assert time.monotonic() < deadline, "the training process outlived its home"
            time.sleep(0.2)
        # The replica is stopped, and reaped: no zombie is left under the server.
        while os.path.exists(f"/proc/{replica}"):
            assert time.monotonic() < deadline, "the replica outlived its home, or was not reaped"
            time.sleep(0.2)
    finally:
        server.stop()
