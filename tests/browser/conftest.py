"""The console in Debian's Chromium, driven by Playwright, against a live server.

Nothing is downloaded: Chromium is /usr/bin/chromium (apt package ``chromium``; override
with NAIAD_CHROMIUM), never ``playwright install``. Missing Chromium or Playwright skips
these tests, and fails them when CI=true. With NAIAD_SCREENSHOTS=docs/img the tests save
the screenshots the docs show.
"""

import contextlib
import importlib.util
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import psutil
import pytest

import naiad
from naiad.testing.jupyter import delete_all_notebooks
from naiad.testing.live import LiveServer

from . import seed

try:
    from playwright.sync_api import expect
except ImportError:  # the playwright fixture says what is missing: a skip, or in CI a failure
    expect = None  # type: ignore[assignment]

CHROMIUM = Path(os.environ.get("NAIAD_CHROMIUM", "/usr/bin/chromium"))
SHOTS = os.environ.get("NAIAD_SCREENSHOTS")
ROOT_CONFTEST = Path(__file__).resolve().parents[1] / "conftest.py"
VIEWPORT = {"width": 1280, "height": 800}


def _need(config: pytest.Config, available: bool, what: str) -> None:
    """tests/conftest.py's need(): skip here, fail in CI."""
    root = next(
        plugin
        for plugin in config.pluginmanager.get_plugins()
        if getattr(plugin, "__file__", None) and Path(plugin.__file__).resolve() == ROOT_CONFTEST
    )
    root.need(available, what)


@pytest.fixture(scope="package")
def playwright(request: pytest.FixtureRequest) -> Iterator:  # type: ignore[type-arg]
    _need(
        request.config,
        importlib.util.find_spec("playwright") is not None,
        "Playwright for Python (pip install -e '.[dev]')",
    )
    _need(request.config, CHROMIUM.is_file(), f"Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    expect.set_options(timeout=15_000)  # a loaded 2-core CI machine renders slowly at times
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="package")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(home=tmp_path_factory.mktemp("console") / "home")
    server.start()
    yield server
    try:
        _quiesce(server)
    finally:
        server.stop()
        _reap(server.home)


def _quiesce(server: LiveServer) -> None:
    """Jobs, endpoints and notebooks outlive the server by design: end them before it stops."""
    client = naiad.Client(url=server.url, token=server.token)
    delete_all_notebooks(client)  # their JupyterLabs outlive the server
    for endpoint in client.endpoints.list():
        client.endpoints.delete(endpoint.name, wait=True, timeout=60)
    for job in client.training_jobs.list():
        if job.status not in ("Completed", "Failed", "Stopped"):
            client.training_jobs.stop(job.name).wait(timeout=60)


def _reap(home: Path) -> None:
    """Whatever still runs from this server's home (a replica an endpoint left behind when
    its deletion failed) is ended by its pid, so no test leaves processes behind."""
    left = [
        proc
        for proc in psutil.process_iter(["pid", "cmdline"])
        if any(str(home) in part for part in proc.info["cmdline"] or [])
    ]
    for proc in left:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _, alive = psutil.wait_procs(left, timeout=10)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()


def chromium_profile(playwright, profile: Path, url: str):  # type: ignore[no-untyped-def]
    """Debian's Chromium, headless, with a profile of its own, opening pages of ``url``."""
    return playwright.chromium.launch_persistent_context(
        str(profile), executable_path=str(CHROMIUM), headless=True, base_url=url, viewport=VIEWPORT
    )


@contextlib.contextmanager
def own_server(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[LiveServer]:
    """A server of a module's own: one that adds users (the login form then asks for a name
    and password, which the other modules do not expect of the shared one)."""
    server = LiveServer(home=tmp_path_factory.mktemp(name) / "home")
    server.start()
    try:
        yield server
    finally:
        try:
            _quiesce(server)
        finally:
            server.stop()
            _reap(server.home)


def add_users(api: httpx.Client, people: dict[str, str], password: str) -> None:
    """Users ``{name: role}``, each with ``password``, through the admin API."""
    for name, role in people.items():
        body = {"name": name, "role": role, "password": password}
        api.post("/users", json=body).raise_for_status()


def signed_in_tab(browser, server: LiveServer, name: str, password: str):  # type: ignore[no-untyped-def]
    """A tab of a fresh browser context, signed in as ``name`` through the login form, and
    the list its page's problems land in (``watch``)."""
    page = browser.new_context(base_url=server.url, viewport=VIEWPORT).new_page()
    problems = watch(page, server)
    page.goto("/")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    return page, problems


@pytest.fixture(scope="package")
def console(playwright, live: LiveServer, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """One Chromium profile for the session, as a person's browser keeps one: its caches
    (plotly.js compiled once) and its session cookie carry from page to page."""
    context = chromium_profile(playwright, tmp_path_factory.mktemp("chromium-profile"), live.url)
    yield context
    context.close()


@pytest.fixture(scope="package")
def api(live: LiveServer) -> Iterator[httpx.Client]:
    headers = {"authorization": f"Bearer {live.token}"}
    with httpx.Client(base_url=f"{live.url}/api/v1", headers=headers, timeout=60) as client:
        yield client


@pytest.fixture(scope="package")
def client(live: LiveServer) -> naiad.Client:
    return naiad.Client(url=live.url, token=live.token)


class Background:
    """A setup step running beside the tests; ``result()`` waits for it and re-raises."""

    def __init__(self, work: Callable[[], object]) -> None:
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(work,), daemon=True)
        self.thread.start()

    def _run(self, work: Callable[[], object]) -> None:
        try:
            work()
        except BaseException as exc:
            self.error = exc

    def result(self, timeout: float) -> None:
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise AssertionError(f"background setup still running after {timeout}s")
        if self.error is not None:
            raise self.error


@pytest.fixture(scope="package")
def served_models(
    live: LiveServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Background]:
    """classifier v1 (production) and v2, each evaluated, served 3:1 by endpoint 'classify',
    prepared in the background (model processes start slowly) while other tests run."""
    work = Background(lambda: seed.serve_models(live, tmp_path_factory.mktemp("models")))
    yield work
    work.thread.join(180)


@pytest.fixture(scope="package")
def world(live: LiveServer, api: httpx.Client, request: pytest.FixtureRequest) -> dict[str, str]:
    """10,000 runs in 'sweep', two runs with curves and artifacts in 'tour', two runs that
    log an epoch counter beside their metrics in 'epochs', and a run with a 1,000,000-point
    metric in 'big'."""
    seed.many_runs(live.home, "sweep", 10_000)
    a = seed.curve_run(api, "tour", "bright-brook", 0.01, "adam")
    b = seed.curve_run(api, "tour", "calm-creek", 0.003, "sgd")
    by_epoch = [
        seed.epoch_run(api, "epochs", f"epochs-{i}", lr) for i, lr in enumerate((0.01, 0.003))
    ]
    seed.artifacts(api, a)
    big = api.post("/runs", json={"experiment": "big", "name": "million"}).json()["id"]
    steps = np.arange(1_000_000)
    noise = np.random.default_rng(1).random(steps.size) * 0.05
    seed.post_series(api, big, "loss", np.exp(-steps / 2e5) + noise)
    if any("test_models" in item.nodeid for item in request.session.items):
        # Start it now, beside the tests that only read. Not while writing the above:
        # concurrent writers on SQLite can answer "database is locked" (a 500).
        request.getfixturevalue("served_models")
    return {"a": a, "b": b, "big": big, "epochs": ",".join(by_epoch)}


def watch(tab, live: LiveServer) -> list[str]:  # type: ignore[no-untyped-def]
    """What went wrong in a tab: uncaught errors, console errors, requests to elsewhere."""
    problems: list[str] = []
    tab.on("pageerror", lambda exc: problems.append(f"uncaught: {exc}"))
    # Offline: nothing may come from anywhere but this server (no CDN, fonts, scripts).
    tab.on(
        "request",
        lambda req: (
            None
            if req.url.startswith((live.url + "/", "data:", "blob:"))
            else problems.append(f"request to elsewhere: {req.url}")
        ),
    )
    tab.on(
        "console",
        lambda msg: (
            problems.append(f"console.error: {msg.text}")
            if msg.type == "error" and not msg.text.startswith("Failed to load resource")
            else None
        ),
    )
    return problems


@pytest.fixture
def page(console, live: LiveServer) -> Iterator:  # type: ignore[no-untyped-def,type-arg]
    """A logged-in tab with default chart and column settings; the test fails if the console
    threw, logged an error or asked anything of another host."""
    tab = console.new_page()
    problems = watch(tab, live)
    if not console.cookies():
        tab.goto(f"/?token={live.token}")
    tab.goto("/#/experiments")
    tab.evaluate("localStorage.clear()")
    tab.wait_for_selector("nav >> text=Experiments")
    yield tab
    tab.close()
    assert not problems, problems


@pytest.fixture
def shot() -> Callable:  # type: ignore[type-arg]
    """shot(page, "runs"): docs/img/runs.png when NAIAD_SCREENSHOTS=docs/img is set."""

    def take(tab, name: str, full_page: bool = False) -> None:  # type: ignore[no-untyped-def]
        if not SHOTS:
            return
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        tab.wait_for_timeout(300)  # let charts finish their transitions
        tab.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=full_page)

    return take


def wait_until(check: Callable[[], bool], timeout: float = 30.0, what: str = "it") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout}s for {what}")
        time.sleep(0.2)
