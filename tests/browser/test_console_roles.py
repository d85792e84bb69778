"""Roles in the console, each user signed in through the login form with name and password.

A viewer reads every page and is shown no action (a write from the page is refused with
403 anyway). An editor deletes a run of theirs, runs a finished job again, registers the
model a job saved, points an alias at it, deploys it, rolls the endpoint back and forward
and deletes it, all through the UI. Only an admin manages notebook servers.

The module runs its own server: creating users turns its login form from the token to
name and password, which the other browser tests do not expect of the shared one.
"""

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import naiad
from naiad.testing.live import LiveServer

from . import seed
from .conftest import CHROMIUM, add_users, expect, own_server, signed_in_tab

pytestmark = pytest.mark.browser

PASSWORD = "a long enough password"
PEOPLE = {"vera": "viewer", "eddie": "editor", "ada": "admin"}
SLOW = 60_000  # a job, a replica or a JupyterLab starting on a busy machine
ACTIONS = "main [data-action]:visible"

Tabs = Callable[[str], Any]  # a user's name -> their signed-in Playwright page


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with own_server(tmp_path_factory, "roles") as live:
        yield live


@pytest.fixture(scope="module")
def admin_api(server: LiveServer) -> Iterator[httpx.Client]:
    headers = {"authorization": f"Bearer {server.token}"}
    with httpx.Client(base_url=f"{server.url}/api/v1", headers=headers, timeout=60) as client:
        add_users(client, PEOPLE, PASSWORD)
        # a notebook server starts while the other tests run; the last test looks at it
        client.post("/notebooks", json={"name": "roles-nb"}).raise_for_status()
        yield client


@pytest.fixture(scope="module")
def editor_api(server: LiveServer, admin_api: httpx.Client) -> Iterator[httpx.Client]:
    """The editor's own key, as `naiad login` gets one: what it creates is theirs."""
    login = {"user": "eddie", "password": PASSWORD}
    token = httpx.post(f"{server.url}/api/v1/login", json=login).raise_for_status().json()
    headers = {"authorization": f"Bearer {token['token']}"}
    with httpx.Client(base_url=f"{server.url}/api/v1", headers=headers, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def trained(
    server: LiveServer, editor_api: httpx.Client, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """A Completed job of the editor's that saved a model (seed.TRAIN), and model
    'roles-seen' registered from it."""
    source: Path = tmp_path_factory.mktemp("train")
    (source / "train.py").write_text(seed.TRAIN)
    token = editor_api.headers["authorization"].removeprefix("Bearer ")
    client = naiad.Client(url=server.url, token=token)
    job = client.training_jobs.create(
        name="roles-train", entrypoint="train.py", source_dir=source, experiment="roles"
    )
    done = job.wait(timeout=SLOW / 1000)
    assert done.status == "Completed", "".join(job.logs())
    editor_api.post("/models/roles-seen/versions", json={"job": job.name}).raise_for_status()
    return job.name


@pytest.fixture(scope="module")
def tabs(playwright: Any, server: LiveServer, admin_api: httpx.Client) -> Iterator[Tabs]:
    """tabs("eddie"): a tab signed in as that user, one browser context per user."""
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
    opened: dict[str, tuple[Any, list[str]]] = {}

    def tab(name: str) -> Any:
        if name not in opened:
            opened[name] = signed_in_tab(browser, server, name, PASSWORD)
        return opened[name][0]

    yield tab
    browser.close()
    problems = {name: found for name, (_, found) in opened.items() if found}
    assert not problems, problems


def test_the_top_bar_names_who_is_signed_in(tabs: Tabs) -> None:
    for name, role in PEOPLE.items():
        who = tabs(name).locator(".top .who")
        expect(who).to_have_text(f"{name} {role}")
        expect(who.locator(".chip")).to_have_text(role)


def test_a_viewer_sees_no_actions_and_a_write_is_refused(
    tabs: Tabs, trained: str, editor_api: httpx.Client
) -> None:
    page = tabs("vera")
    run_id = editor_api.get(f"/jobs/{trained}").json()["run_id"]
    for route, drawn in (  # each page, and something it draws with its actions
        (f"#/runs/{run_id}", "text=All runs of the experiment"),
        (f"#/jobs/{trained}", "main h1 .badge >> text=Completed"),
        ("#/models/roles-seen", "main .lineage"),
        ("#/notebooks", "table.notebooks tr[data-name='roles-nb']"),
    ):
        page.goto(f"/{route}")
        expect(page.locator(drawn)).to_be_visible()
        expect(page.locator(ACTIONS)).to_have_count(0)
    expect(page.get_by_role("button", name="Create")).to_have_count(0)  # no notebook form

    refused = page.evaluate(
        """async () => {
          const res = await fetch("/api/v1/runs", {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ experiment: "roles", name: "not-allowed" }),
          });
          return [res.status, await res.json()];
        }"""
    )
    assert refused[0] == 403, refused
    assert "needs the editor role" in refused[1]["message"]
    assert "vera" in refused[1]["message"]


def test_an_editor_deletes_their_run_and_not_anothers(
    tabs: Tabs, admin_api: httpx.Client, editor_api: httpx.Client
) -> None:
    theirs = admin_api.post("/runs", json={"experiment": "roles", "name": "admins-run"}).json()
    mine = editor_api.post("/runs", json={"experiment": "roles", "name": "eddies-run"}).json()
    page = tabs("eddie")

    page.goto(f"/#/runs/{theirs['id']}")
    expect(page.locator("main h1")).to_contain_text("admins-run")
    expect(page.get_by_role("link", name="All runs of the experiment")).to_be_visible()
    expect(page.get_by_role("button", name="Delete run")).to_have_count(0)

    page.goto(f"/#/runs/{mine['id']}")
    expect(page.locator("main h1")).to_contain_text("eddies-run")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete run").click()
    expect(page).to_have_url(re.compile("#/experiments/roles$"))
    assert editor_api.get(f"/runs/{mine['id']}").status_code == 404


def test_an_editor_runs_a_job_again_and_registers_its_model(
    tabs: Tabs, trained: str, editor_api: httpx.Client
) -> None:
    page = tabs("eddie")
    page.goto(f"/#/jobs/{trained}")
    expect(page.locator("main h1 .badge")).to_have_text("Completed")
    expect(page.get_by_role("button", name="Stop")).to_be_hidden()
    page.get_by_role("button", name="Run again").click()
    expect(page.locator("main h1")).to_contain_text(f"{trained}-r2")
    assert editor_api.get(f"/jobs/{trained}-r2").json()["created_by"] == "eddie"

    # the model each run saved: v1 from the first, v2 from the rerun once it completes
    for job, version in ((trained, 1), (f"{trained}-r2", 2)):
        page.goto(f"/#/jobs/{job}")
        expect(page.locator("main h1 .badge")).to_have_text("Completed", timeout=SLOW)
        page.get_by_role("button", name="Register model").click()
        form = page.locator("form[data-form='register']")
        form.get_by_label("Model name").fill("roles-model")
        form.get_by_role("button", name="Register", exact=True).click()
        expect(page.locator("main h1")).to_have_text("roles-model")
        expect(page.locator("main .facts")).to_contain_text(f"latest v{version}")


def test_an_editor_sets_an_alias_deploys_rolls_back_updates_and_deletes(
    tabs: Tabs, editor_api: httpx.Client
) -> None:
    page = tabs("eddie")
    page.goto("/#/models/roles-model")
    expect(page.locator("main h1")).to_have_text("roles-model")

    page.get_by_role("button", name="Set alias").click()
    form = page.locator("form[data-form='alias']")
    form.get_by_label("Alias").fill("staging")
    form.get_by_label("Version").select_option(label="v2")
    form.get_by_role("button", name="Save").click()
    expect(page.locator("main .facts")).to_contain_text("staging → v2")
    assert editor_api.get("/models/roles-model").json()["aliases"] == {"staging": 2}

    page.get_by_role("button", name="Deploy").click()
    form = page.locator("form[data-form='deploy']")
    form.get_by_label("Endpoint name").fill("roles-ep")
    expect(form.get_by_label("Version")).to_have_value("2")  # the newest first
    form.get_by_role("button", name="Deploy").click()
    expect(page.locator("main h1")).to_contain_text("roles-ep")
    expect(page.locator("main h1 .badge")).to_have_text("InService", timeout=SLOW)
    variants = page.locator("table.variants").first
    expect(variants).to_contain_text("roles-model:2")

    # the same name again: the server's sentence, in the form
    page.goto("/#/models/roles-model")
    page.get_by_role("button", name="Deploy").click()
    form = page.locator("form[data-form='deploy']")
    form.get_by_label("Endpoint name").fill("roles-ep")
    form.get_by_role("button", name="Deploy").click()
    expect(form.get_by_role("alert")).to_contain_text("roles-ep")

    viewer = tabs("vera")  # the viewer sees the endpoint, and no action on it
    viewer.goto("/#/endpoints/roles-ep")
    expect(viewer.locator("table.variants").first).to_contain_text("roles-model:2")
    expect(viewer.locator(ACTIONS)).to_have_count(0)

    page.goto("/#/endpoints/roles-ep")
    page.get_by_role("button", name="Roll back to v1").click()
    expect(variants).to_contain_text("roles-model:1", timeout=SLOW)
    expect(page.locator("main h1 .badge")).to_have_text("InService", timeout=SLOW)
    expect(page.get_by_role("button", name="Roll back")).to_have_count(0)  # nothing before v1

    page.get_by_role("button", name="Update").click()
    form = page.locator("form[data-form='update']")
    form.get_by_label("Version").select_option(label="v2 (staging)")
    form.get_by_role("button", name="Roll out").click()
    expect(variants).to_contain_text("roles-model:2", timeout=SLOW)
    expect(page.get_by_role("button", name="Roll back to v1")).to_be_visible(timeout=SLOW)
    served = editor_api.get("/endpoints/roles-ep").json()
    assert [v["model"] for v in served["variants"]] == ["roles-model:2"]

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete").click()
    expect(page.locator("main h1")).to_have_text("Endpoints")
    status = editor_api.get("/endpoints/roles-ep")
    assert status.status_code == 404 or status.json()["status"] == "Deleting", status.text


def test_only_an_admin_manages_notebooks(tabs: Tabs, server: LiveServer) -> None:
    admin, editor = tabs("ada"), tabs("eddie")
    admin.goto("/#/notebooks")
    row = admin.locator("table.notebooks tr[data-name='roles-nb']")
    expect(row.locator(".badge")).to_have_text("InService", timeout=SLOW)
    expect(admin.get_by_role("button", name="Create")).to_be_visible()
    for action in ("Open", "Stop", "Run as job", "Delete"):
        expect(row.get_by_label(f"{action} roles-nb")).to_be_visible()

    editor.goto("/#/notebooks")
    row = editor.locator("table.notebooks tr[data-name='roles-nb']")
    expect(row.locator(".badge")).to_have_text("InService", timeout=SLOW)
    expect(editor.get_by_role("button", name="Create")).to_have_count(0)
    expect(row.get_by_role("button", name="Run as job roles-nb")).to_be_visible()
    for action in ("Open", "Stop", "Start", "Delete"):
        expect(row.get_by_label(f"{action} roles-nb")).to_have_count(0)
    # an editor picks from the server's listing of the notebook's files, not JupyterLab's
    folder = server.home / "notebooks" / "roles-nb" / "files"
    (folder / "explore.ipynb").write_text("{}")
    row.get_by_role("button", name="Run as job roles-nb").click()
    expect(editor.get_by_label("Notebook file")).to_contain_text("explore.ipynb")
