"""Find the local server, or start one in the background that outlives this process."""

import os
import subprocess
import sys
import time

import httpx

from naiad.sdk.config import naiad_home, resolve


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def ensure_server(timeout: float = 30.0) -> str:
    """The URL of a healthy local server, starting ``naiad server`` detached if none answers."""
    url = resolve().url
    if healthy(url):
        return url
    home = naiad_home()
    home.mkdir(parents=True, exist_ok=True)
    with open(home / "server.log", "ab") as log:
        subprocess.Popen(
            [sys.executable, "-m", "naiad.cli.main", "server"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own session: it keeps running after we exit
            env={**os.environ, "NAIAD_HOME": str(home)},
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        url = resolve().url
        if healthy(url):
            return url
        time.sleep(0.1)
    raise RuntimeError(
        f"The server did not start within {timeout:.0f}s; see {home / 'server.log'}."
    )
