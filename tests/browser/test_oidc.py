"""Console sign-in with OpenID Connect against a real, certified provider run locally
(npm's oidc-provider, tests/fixtures/oidc): the provider's group claim decides the role,
a member of no mapped group is refused, and a local password user is never taken over."""

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from naiad.testing.live import LiveServer, free_port

from .conftest import _need, chromium_profile, expect

pytestmark = pytest.mark.browser

PROVIDER = Path(__file__).resolve().parents[1] / "fixtures" / "oidc"


@pytest.fixture(scope="module")
def sso(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A Naiad server whose console signs in with the local provider."""
    installed = (PROVIDER / "node_modules" / "oidc-provider").is_dir()
    available = shutil.which("node") is not None and installed
    _need(request.config, available, "Node.js and oidc-provider (npm ci in tests/fixtures/oidc)")
    port, provider_port = free_port(), free_port()
    redirect = f"http://127.0.0.1:{port}/login/oidc/callback"
    log = tmp_path_factory.mktemp("oidc") / "provider.log"
    with open(log, "wb") as out:
        provider = subprocess.Popen(
            ["node", "provider.mjs", str(provider_port), redirect],
            cwd=PROVIDER, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    issuer = f"http://127.0.0.1:{provider_port}"
    try:
        for _ in range(100):
            try:
                httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=1)
                break
            except httpx.TransportError:
                assert provider.poll() is None, log.read_text()
                time.sleep(0.1)
        server = LiveServer(
            home=tmp_path_factory.mktemp("sso") / "home",
            port=port,
            env={
                "NAIAD_OIDC_ISSUER": issuer,
                "NAIAD_OIDC_CLIENT_ID": "naiad",
                "NAIAD_OIDC_CLIENT_SECRET": "naiad-test-secret",
                "NAIAD_OIDC_ROLES": "ml-admins=admin,ml-team=editor",
            },
        )
        server.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        provider.terminate()
        provider.wait(10)


@pytest.fixture
def browser(playwright, sso: LiveServer, tmp_path: Path):  # type: ignore[no-untyped-def]
    context = chromium_profile(playwright, tmp_path / "profile", sso.url)
    yield context
    context.close()


def _sign_in(page, login: str) -> None:  # type: ignore[no-untyped-def]
    """Through the provider's own pages: its sign-in form, then its consent."""
    page.goto("/")
    page.get_by_role("link", name="Sign in with 127.0.0.1").click()
    page.locator("input[name=login]").fill(login)
    page.locator("input[name=password]").fill("any")
    page.locator("button[type=submit]").click()
    consent = page.locator("button[autofocus], button[type=submit]")
    if "/interaction/" in page.url:
        consent.first.click()


@pytest.mark.parametrize(("login", "role"), [("ana", "admin"), ("ed", "editor")])
def test_the_providers_groups_give_the_role(
    browser, sso: LiveServer, login: str, role: str
) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page()
    _sign_in(page, login)
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    me = page.request.get("/api/v1/users/me").json()
    assert me == {"name": login, "role": role, "read_only": False, "user": True, "projects": {}}
    admin = httpx.get(f"{sso.url}/api/v1/users/{login}",
                      headers={"authorization": f"Bearer {sso.token}"}).json()  # fmt: skip
    assert admin["role"] == role and admin["has_password"] is False


def test_a_member_of_no_mapped_group_is_refused(browser, sso: LiveServer) -> None:  # type: ignore[no-untyped-def]
    page = browser.new_page()
    _sign_in(page, "vic")
    expect(page.get_by_role("alert")).to_contain_text("(everyone) give no role")
    assert page.request.get("/api/v1/users/me").status == 401


def test_a_password_user_of_the_same_name_is_not_taken_over(browser, sso: LiveServer) -> None:  # type: ignore[no-untyped-def]
    admin = {"authorization": f"Bearer {sso.token}"}
    local = {"name": "pat", "role": "viewer", "password": "local-password"}
    made = httpx.post(f"{sso.url}/api/v1/users", headers=admin, json=local)
    assert made.status_code == 201
    page = browser.new_page()
    _sign_in(page, "pat")  # the provider's pat is in ml-team: an editor, were it not for the clash
    expect(page.get_by_role("alert")).to_contain_text("already signs in with a password")
    assert page.request.get("/api/v1/users/me").status == 401
    assert httpx.get(f"{sso.url}/api/v1/users/pat", headers=admin).json()["role"] == "viewer"
