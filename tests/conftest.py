"""Shared fixtures. With CI=true a test whose service is missing fails instead of skipping."""

import importlib.util
import json
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from fastapi.testclient import TestClient

from naiad.settings import Settings
from naiad.testing import postgres

IN_CI = os.environ.get("CI", "").lower() == "true"
DURATIONS = Path(__file__).with_name("durations.json")  # seconds per file, from a full run


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest files first. `make test` gives each of its two workers a file at a time, so
    a long file that starts last makes the suite end with one worker idle; in this order
    it ends on short files. Only the time changes, never what runs; a file missing from
    durations.json counts as short. Refresh it from `pytest --durations=0` when the
    slow files change."""
    seconds: dict[str, float] = json.loads(DURATIONS.read_text()) if DURATIONS.exists() else {}
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        first.setdefault(item.nodeid.split("::")[0], index)

    def longest_first(item: pytest.Item) -> tuple[float, int]:
        path = item.nodeid.split("::")[0]
        return -seconds.get(path, 0.0), first[path]

    items.sort(key=longest_first)  # stable: each file's tests keep their order


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def example_module(example: str, module: str) -> ModuleType:
    """``examples/<example>/<module>.py``, loaded under a name of its own: two examples'
    ``make_data`` must not meet in ``sys.modules``, where the first would serve both."""
    path = EXAMPLES / example / f"{module}.py"
    spec = importlib.util.spec_from_file_location(f"example_{example}_{module}", path)
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


def need(available: bool, what: str) -> None:
    """Skip when a service is missing, but fail in CI, where it must be there."""
    if not available:
        if IN_CI:
            pytest.fail(f"{what} is required when CI=true but is not available")
        pytest.skip(f"{what} not available")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    url = postgres.admin_url()
    need(url is not None, f"PostgreSQL ({postgres.ENV})")
    assert url is not None
    with postgres.scratch_database(url) as db_url:
        yield db_url


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[object]:
    """A Ray cluster on this machine: a head and three worker nodes of one CPU each."""
    try:
        import ray  # noqa: F401
    except ImportError:
        need(False, "Ray (pip install 'naiad[ray]')")
    from naiad.testing.ray_cluster import local_cluster

    with local_cluster(workers=3, cpus=1) as cluster:
        yield cluster


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Server settings on a fresh store: the same tests run on SQLite and PostgreSQL."""
    database_url = None
    if request.param == "postgres":
        database_url = request.getfixturevalue("postgres_url")
        postgres.truncate_all(database_url)
    # No warm standby: an app per test would each import torch in the background.
    return Settings(home=tmp_path / "home", database_url=database_url, warm_start=False)


@pytest.fixture
def app(settings: Settings):  # type: ignore[no-untyped-def]
    from naiad.server.app import create_app

    app = create_app(settings)
    yield app
    app.state.naiad.engine.dispose()


@pytest.fixture
def api(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    """An authenticated client on the ASGI app (no network)."""
    token = app.state.naiad.token
    with TestClient(app, headers={"authorization": f"Bearer {token}"}) as client:
        yield client
