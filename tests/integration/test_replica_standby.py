"""The standby replica: started ahead with torch imported, handed a slot, it serves there
on the port it held, and a restarted server recognises it as that slot's replica."""

import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from naiad.server.managed.process import find
from naiad.server.managed.replicas import REPLICA, Launch, ReplicaProcess, arguments
from naiad.server.managed.standby import Standby
from naiad.testing.endpoints import scale_model


def wait_for(check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{check} not true in {timeout}s"
        time.sleep(0.02)


def pings(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ping").status_code == 200
    except httpx.HTTPError:
        return False


def waiting_standbys(besides: int | None) -> set[int]:
    """Standby processes this test started (children of this process), but ``besides``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == besides:
            continue
        try:
            state, ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(ppid) == os.getpid() and state != "Z" and b"naiad.serving.standby" in command:
            found.add(int(entry.name))
    return found


def test_a_standby_becomes_the_replica_of_its_slot(tmp_path: Path) -> None:
    standby = Standby(REPLICA, refill_delay_s=0.0)
    root = tmp_path / "endpoints" / "e" / "k.1" / "0"
    proc = ReplicaProcess(root=root, kind=REPLICA, endpoint="e", key="k.1", index=0)
    model = scale_model(tmp_path / "model", 2.0)
    launch = Launch(model_dir=model, max_batch=8, max_delay_ms=1.0, queue_size=16)
    try:
        standby.keep(True, time.monotonic())
        wait_for(standby.ready)
        proc.start(lambda port: arguments(root, launch, port), standby)
        command = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        assert command[1:] == [
            b"-m",
            b"naiad.serving.standby",
            b"--port",
            str(proc.port).encode(),
            b"",
        ]
        assert not standby.ready() and waiting_standbys(besides=proc.pid) == set()  # taken
        wait_for(lambda: pings(proc.url), timeout=30)
        answer = httpx.post(f"{proc.url}/invocations", json={"inputs": [[1, 2, 3, 4]]})
        assert answer.json()["predictions"] == [[2.0, 4.0, 6.0, 8.0]]
        log = proc.log_path.read_text()
        assert log.startswith(f"--- starting on port {proc.port} at ") and "Serving" in log
        assert os.readlink(f"/proc/{proc.pid}/cwd") == str(root.resolve())
        assert find(root, REPLICA) == (proc.pid, proc.port)  # a restarted server re-attaches

        standby.keep(True, time.monotonic())  # the next one
        assert len(waiting_standbys(besides=proc.pid)) == 1
        standby.keep(False, time.monotonic())  # no endpoint autoscales any more: none waits
        assert waiting_standbys(besides=proc.pid) == set()
    finally:
        standby.close()
        if proc.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
