"""The Users page: an admin signed in through the login form adds a user, changes their
role, disables them (their key is refused at once), sets their password, makes a project
with them as a member and deletes them, all through the UI; a refusal shows the server's
sentence. An editor is shown no Users link, and the server's 403 on ``#/users``.

The module runs its own server: creating users turns its login form from the token to
name and password, which the other browser tests do not expect of the shared one.
"""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from naiad.testing.live import LiveServer

from .conftest import CHROMIUM, add_users, expect, own_server, signed_in_tab, wait_until

pytestmark = pytest.mark.browser

PASSWORD = "a long enough password"
PEOPLE = {"ada": "admin", "eddie": "editor"}
NEWCOMER = "bob"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with own_server(tmp_path_factory, "users") as live:
        yield live


@pytest.fixture(scope="module")
def admin_api(server: LiveServer) -> Iterator[httpx.Client]:
    headers = {"authorization": f"Bearer {server.token}"}
    with httpx.Client(base_url=f"{server.url}/api/v1", headers=headers, timeout=60) as client:
        add_users(client, PEOPLE, PASSWORD)
        yield client


@pytest.fixture(scope="module")
def browser(playwright: Any) -> Iterator[Any]:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
    yield browser
    browser.close()


def signed_in(browser: Any, server: LiveServer, name: str) -> tuple[Any, list[str]]:
    """A tab of a fresh browser context, signed in as ``name`` through the login form."""
    return signed_in_tab(browser, server, name, PASSWORD)  # type: ignore[no-any-return]


def accept_next_dialog(page: Any) -> None:
    page.once("dialog", lambda dialog: dialog.accept())


def test_an_admin_manages_users_and_projects(
    browser: Any, server: LiveServer, admin_api: httpx.Client
) -> None:
    page, problems = signed_in(browser, server, "ada")
    nav = page.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="Users").click()
    expect(page.locator("main h1")).to_have_text("Users")
    expect(nav.get_by_role("link", name="Audit")).to_be_visible()
    mine = page.locator("table.users tr[data-name='ada']")
    expect(mine).to_contain_text("you")  # no way to lock oneself out
    expect(mine.get_by_role("button", name="Disable ada")).to_have_count(0)
    expect(mine.get_by_role("button", name="Delete ada")).to_have_count(0)

    add = page.get_by_role("form", name="Add user")
    add.get_by_label("Name").fill(NEWCOMER)
    add.get_by_label("Password").fill("abc")  # too short: the server's sentence, in the form
    add.get_by_role("button", name="Add user").click()
    expect(add.get_by_role("alert")).to_contain_text("needs 8 to")
    assert admin_api.get(f"/users/{NEWCOMER}").status_code == 404
    add.get_by_label("Password").fill(PASSWORD)
    add.get_by_role("button", name="Add user").click()
    expect(add.get_by_role("status")).to_have_text(f"Added user {NEWCOMER}.")
    row = page.locator(f"table.users tr[data-name='{NEWCOMER}']")
    expect(row).to_contain_text("Enabled")
    made = admin_api.get(f"/users/{NEWCOMER}").json()
    assert (made["role"], made["has_password"], made["created_by"]) == ("viewer", True, "ada")
    key = admin_api.post("/keys", json={"user": NEWCOMER}).raise_for_status().json()["token"]
    theirs = {"authorization": f"Bearer {key}"}

    def me_status() -> int:
        return httpx.get(f"{server.url}/api/v1/users/me", headers=theirs).status_code

    assert me_status() == 200

    row.get_by_label(f"Role of {NEWCOMER}").select_option("editor")
    wait_until(lambda: admin_api.get(f"/users/{NEWCOMER}").json()["role"] == "editor")
    expect(row.get_by_label(f"Role of {NEWCOMER}")).to_have_value("editor")

    row.get_by_role("button", name=f"Disable {NEWCOMER}").click()
    expect(row).to_contain_text("Disabled")
    assert me_status() == 401  # their key, refused at once
    row.get_by_role("button", name=f"Enable {NEWCOMER}").click()
    expect(row).to_contain_text("Enabled")
    assert me_status() == 200

    row.get_by_role("button", name=f"Set password of {NEWCOMER}").click()
    form = page.get_by_role("form", name=f"Set the password of {NEWCOMER}")
    form.get_by_label("New password").fill("abc")
    form.get_by_role("button", name="Set password").click()
    expect(form.get_by_role("alert")).to_contain_text("this one has 3")
    form.get_by_label("New password").fill("another long password")
    form.get_by_role("button", name="Set password").click()
    expect(page.get_by_text(f"The password of {NEWCOMER} is set.")).to_be_visible()
    login = {"user": NEWCOMER, "password": "another long password"}
    assert httpx.post(f"{server.url}/api/v1/login", json=login).status_code == 201

    create = page.get_by_role("form", name="Create project")
    create.get_by_label("Name").fill("vision")
    create.get_by_label("Description").fill("Image models")
    create.get_by_role("button", name="Create project").click()
    card = page.locator("section.project[data-project='vision']")
    expect(card).to_contain_text("Image models")
    card.get_by_label("User to add to vision").select_option(NEWCOMER)
    card.get_by_label("Role in vision").select_option("editor")
    card.get_by_role("button", name="Add member").click()
    member = card.locator(f"table.members tr[data-user='{NEWCOMER}']")
    expect(member.get_by_label(f"Role of {NEWCOMER} in vision")).to_have_value("editor")
    assert admin_api.get("/projects/vision/members").json() == [
        {"user": NEWCOMER, "role": "editor"}
    ]
    member.get_by_label(f"Role of {NEWCOMER} in vision").select_option("viewer")
    wait_until(
        lambda: admin_api.get("/projects/vision/members").json()[0]["role"] == "viewer",
        what="the member's new role",
    )

    accept_next_dialog(page)
    row.get_by_role("button", name=f"Delete {NEWCOMER}").click()
    expect(row).to_have_count(0)
    assert admin_api.get(f"/users/{NEWCOMER}").status_code == 404
    assert me_status() == 401
    expect(card.locator("table.members")).to_have_count(0)  # their membership went with them
    assert admin_api.get("/projects/vision/members").json() == []

    accept_next_dialog(page)
    card.get_by_role("button", name="Delete project vision").click()
    expect(card).to_have_count(0)
    assert "vision" not in [p["name"] for p in admin_api.get("/projects").json()]
    assert not problems, problems


def test_an_editor_sees_no_users_link_and_the_servers_refusal(
    browser: Any, server: LiveServer, admin_api: httpx.Client
) -> None:
    page, problems = signed_in(browser, server, "eddie")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Experiments")).to_be_visible()
    expect(nav.get_by_role("link", name="Users")).to_have_count(0)
    expect(nav.get_by_role("link", name="Audit")).to_have_count(0)
    expect(page.locator(".top nav a[data-section='users']")).to_be_hidden()
    page.goto("/#/users")
    expect(page.locator("main h1")).to_have_text("Users")
    expect(page.locator("main").get_by_role("alert")).to_contain_text("needs the admin role")
    expect(page.locator("main table")).to_have_count(0)
    assert not problems, problems
