"""This home's local server: find it, start it in the background, report on it, stop it.

A server records itself in ``server.json`` and holds ``server.lock`` (flock) for its
life, so "is this home's server running?" is the lock, not a guess from a pid; and
``/health`` reports the random id of the home it keeps, so a server of another home on the
default port is never mistaken for ours.
"""

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from naiad.core.home import HomeLayout, default_home
from naiad.sdk.config import resolve


def health(url: str) -> dict[str, Any] | None:
    """What ``/health`` says at ``url`` (also when 503), or None when nothing answers."""
    try:
        response = httpx.get(f"{url}/api/v1/health", timeout=1, trust_env=False)
        body = response.json()
    except (httpx.TransportError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def healthy(url: str) -> bool:
    return (health(url) or {}).get("status") == "ok"


def home_locked(home: Path) -> bool:
    """Whether a live server keeps ``home``: its lock is held (the kernel drops it on exit)."""
    try:
        fd = os.open(HomeLayout(home).lock_file, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


@dataclass(frozen=True)
class ServerStatus:
    home: str
    running: bool
    url: str | None = None
    pid: int | None = None
    healthy: bool = False
    version: str | None = None
    problem: str | None = None  # e.g. the home was deleted under it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _home() -> Path:
    return default_home().resolve()


def _record(home: Path) -> dict[str, Any]:
    with contextlib.suppress(OSError, ValueError):
        record = json.loads(HomeLayout(home).server_file.read_text())
        if isinstance(record, dict):
            return record
    return {}


def server_status(home: Path | None = None) -> ServerStatus:
    """The server that keeps ``home`` (default: $NAIAD_HOME), running or not."""
    home = (home or _home()).resolve()
    if not home_locked(home):
        return ServerStatus(home=str(home), running=False)
    record = _record(home)
    url, pid = record.get("url"), record.get("pid")
    said = health(url) if isinstance(url, str) else None
    return ServerStatus(
        home=str(home),
        running=True,
        url=url if isinstance(url, str) else None,
        pid=pid if isinstance(pid, int) else None,
        healthy=(said or {}).get("status") == "ok",
        version=(said or {}).get("version"),
        problem=(said or {}).get("message"),
    )


def stop_server(home: Path | None = None, timeout: float = 30.0) -> ServerStatus:
    """SIGTERM this home's server and wait until it has let go of the home.

    A graceful stop: jobs and endpoint replicas keep running (they outlive the server
    by design) and the next server re-attaches to them.
    """
    status = server_status(home)
    if not status.running or status.pid is None:
        return status
    with contextlib.suppress(ProcessLookupError):
        os.kill(status.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while home_locked(Path(status.home)):
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"The server (pid {status.pid}) did not stop within {timeout:.0f} s; "
                f"see {HomeLayout(Path(status.home)).server_log}, or end it with "
                f"`kill {status.pid}`."
            )
        time.sleep(0.1)
    return status


def sign_in_link(status: ServerStatus) -> str | None:
    """The console link with the admin token, for the home's owner at their terminal."""
    if status.url is None:
        return None
    try:
        token = HomeLayout(Path(status.home)).token_file.read_text().strip()
    except OSError:
        return f"{status.url}/"
    return f"{status.url}/?token={token}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ours(said: dict[str, Any] | None, home: Path) -> bool:
    """Whether a healthy server answered that keeps ``home`` (the id its server made)."""
    if said is None or said.get("status") != "ok":
        return False
    try:
        return said.get("home") == HomeLayout(home).id_file.read_text().strip()
    except OSError:
        return False  # no server of this home has started yet


def ensure_server(timeout: float = 30.0) -> str:
    """The URL of this home's healthy server, starting ``naiad server`` detached if none runs.

    With NAIAD_URL set, that server is used and none is started. A server of another
    home on the port we would use is left alone: ours starts on a free port instead.
    """
    explicit = os.environ.get("NAIAD_URL")
    if explicit:
        if healthy(explicit.rstrip("/")):
            return explicit.rstrip("/")
        raise RuntimeError(f"No Naiad server answers at NAIAD_URL={explicit}; start it or unset.")
    home = _home()
    url = resolve().url
    said = health(url)
    if _ours(said, home):
        return url
    env = {**os.environ, "NAIAD_HOME": str(home)}
    if said is not None and not home_locked(home):  # the port is taken by someone else's
        env["NAIAD_PORT"] = str(_free_port())
        print(
            f"The server at {url} keeps another Naiad home; starting this home's own "
            f"({home}) on port {env['NAIAD_PORT']}.",
            file=sys.stderr,
        )
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    log = os.open(HomeLayout(home).server_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        subprocess.Popen(
            [sys.executable, "-m", "naiad.cli.main", "server"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own session: it keeps running after we exit
            env=env,
        )
    finally:
        os.close(log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        url = resolve().url
        if _ours(health(url), home):
            return url
        time.sleep(0.1)
    raise RuntimeError(
        f"The server did not start within {timeout:.0f}s; see {HomeLayout(home).server_log}."
    )
