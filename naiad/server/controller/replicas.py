"""Replica processes on this machine: start one detached, find it again, signal it.

Each replica lives in its own directory, ``$NAIAD_HOME/endpoints/<endpoint>/<key>/<i>/``:
``replica.json`` (pid, port, restarts; written atomically after the start), ``replica.log``
(its output) and ``capture/`` (sampled requests, when capture is on). The process runs in
its own session with that directory as its working directory, so it outlives the server,
and a restarted server finds it again by pid, checked in /proc against its command line
and working directory, so a reused pid never counts.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from naiad.executors.supervisor.workdir import proc_alive, read_json, write_json_atomic

SERVING_MODULE = "naiad.serving.main"
STATE_FILE = "replica.json"
LOG_FILE = "replica.log"
CAPTURE_DIR = "capture"
MAX_LOG_BYTES = 8 * 1024 * 1024  # rotated to replica.log.1 at a start past this size
LOG_TAIL_CHARS = 1500


@dataclass(frozen=True)
class Launch:
    """Everything a replica is started with."""

    model_dir: Path
    max_batch: int
    max_delay_ms: float
    queue_size: int
    capture_fraction: float = 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def argv(root: Path, launch: Launch, port: int) -> list[str]:
    args = [
        sys.executable,
        "-m",
        SERVING_MODULE,
        str(launch.model_dir),
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        "--max-batch",
        str(launch.max_batch),
        "--max-delay-ms",
        f"{launch.max_delay_ms:g}",
        "--queue-size",
        str(launch.queue_size),
    ]
    if launch.capture_fraction > 0:
        args += [
            "--capture-dir",
            str(root / CAPTURE_DIR),
            "--capture-fraction",
            f"{launch.capture_fraction:g}",
        ]
    return args


def start(root: Path, launch: Launch, restarts: int) -> tuple[subprocess.Popen[bytes], int]:
    """Start a replica on a free loopback port; its pid and port are on disk when this returns."""
    root.mkdir(parents=True, exist_ok=True)
    log_path = root / LOG_FILE
    with contextlib.suppress(OSError):
        if log_path.stat().st_size > MAX_LOG_BYTES:
            log_path.replace(root / f"{LOG_FILE}.1")
    port = free_port()
    with open(log_path, "ab") as log:
        log.write(f"--- starting on port {port} at {time.strftime('%Y-%m-%dT%H:%M:%S')}\n".encode())
        log.flush()
        child = subprocess.Popen(
            argv(root, launch, port),
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a signal to the server's group never reaches it
            close_fds=True,
        )
    record = {"pid": child.pid, "port": port, "restarts": restarts, "started_at": time.time()}
    write_json_atomic(root / STATE_FILE, record)
    return child, port


def read_record(root: Path) -> dict[str, Any] | None:
    return read_json(root / STATE_FILE)


def is_replica(root: Path, pid: int, port: int) -> bool:
    """Whether ``pid`` is alive and is this directory's replica serving on ``port``."""
    if not proc_alive(pid):
        return False
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return False
    here = os.path.realpath(root)
    if cwd not in (here, f"{here} (deleted)") or SERVING_MODULE.encode() not in args:
        return False
    try:
        return args[args.index(b"--port") + 1] == str(port).encode()
    except (ValueError, IndexError):
        return False


def live_replica(root: Path) -> tuple[int, int] | None:
    """(pid, port) of the replica a previous server started here, if it still runs."""
    record = read_record(root)
    if not record:
        return None
    pid, port = record.get("pid"), record.get("port")
    if isinstance(pid, int) and isinstance(port, int) and is_replica(root, pid, port):
        return pid, port
    return None


def send(pid: int, sig: signal.Signals) -> None:
    """Signal the replica's process group (it leads its own session); gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def log_tail(root: Path, chars: int = LOG_TAIL_CHARS) -> str:
    """The last lines of the replica's log (since its last start), for failure reasons."""
    try:
        with open(root / LOG_FILE, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - chars))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    cut = text.rfind("--- starting on port")
    if cut >= 0:
        text = text[cut:].split("\n", 1)[-1]
    return text.strip()


def remove(root: Path) -> None:
    """Delete a stopped replica's directory, and its parents once they are empty."""
    shutil.rmtree(root, ignore_errors=True)
    for parent in (root.parent, root.parent.parent):
        with contextlib.suppress(OSError):
            parent.rmdir()
