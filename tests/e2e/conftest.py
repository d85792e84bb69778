"""A live server per module: real uvicorn on a free loopback port, SQLite under a temp home."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from naiad.testing.endpoints import kill_replicas
from naiad.testing.live import LiveServer
from naiad.testing.s3 import s3_server  # noqa: F401 - a fixture for this folder


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """The module's server; the endpoint replicas it started go with it."""
    server = LiveServer(home=tmp_path_factory.mktemp("naiad") / "home")
    server.start()
    try:
        yield server
    finally:
        server.stop()
        kill_replicas(server.home)


@pytest.fixture(scope="module")
def server(live: LiveServer) -> LiveServer:
    """``live`` under the name most modules use."""
    return live


@pytest.fixture
def client_env(live: LiveServer, monkeypatch: pytest.MonkeyPatch) -> LiveServer:
    """Point this process's SDK at the live server, as a user's shell would."""
    monkeypatch.setenv("NAIAD_HOME", str(live.home))
    monkeypatch.delenv("NAIAD_URL", raising=False)
    monkeypatch.delenv("NAIAD_TOKEN", raising=False)
    monkeypatch.delenv("NAIAD_RUN_ID", raising=False)
    return live


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"
