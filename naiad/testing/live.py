"""A real server in a subprocess on a free loopback port, polled on /health until it answers."""

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from naiad.core.home import HomeLayout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveServer:
    home: Path
    port: int = field(default_factory=free_port)
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        return HomeLayout(self.home).token_file.read_text().strip()

    def environ(self) -> dict[str, str]:
        """The environment a client process needs to reach this server."""
        return {**os.environ, "NAIAD_HOME": str(self.home), "NAIAD_URL": self.url, **self.env}

    def start(self, timeout: float = 30.0) -> float:
        """Start and wait until healthy; returns the seconds it took."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_path = HomeLayout(self.home).server_log
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "naiad.cli.main", "server", "--port", str(self.port)],
            env=self.environ(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        deadline = started + timeout
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=0.5).status_code == 200:
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(
            f"server not healthy in {timeout}s:\n{self.log_path.read_text()[-3000:]}"
        )

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
