"""Login: the token once (?token= or the form), then an HttpOnly SameSite=Strict cookie
that every page, asset and API call of the console rides on."""

import httpx
import pytest

from naiad.testing.live import LiveServer

from .conftest import expect

pytestmark = pytest.mark.browser

SECTIONS = {
    "Experiments": "Experiments",
    "Jobs": "Jobs",
    "Models": "Models",
    "Endpoints": "Endpoints",
}


@pytest.fixture
def logged_out(console):  # type: ignore[no-untyped-def]
    """A tab of the session's browser with no session cookie (the next test logs in again)."""
    console.clear_cookies()
    tab = console.new_page()
    yield tab
    tab.close()
    console.clear_cookies()


def test_wrong_token_refused_right_token_opens_a_session(
    console, logged_out, live: LiveServer
) -> None:  # type: ignore[no-untyped-def]
    context, page = console, logged_out

    response = page.goto("/?token=not-the-token")
    assert response is not None and response.status == 401
    expect(page.get_by_role("alert")).to_contain_text("not this server's token")
    assert context.cookies() == []
    for locked in ("/api/v1/runs", "/static/js/main.js", "/static/vendor/plotly.min.js"):
        assert page.request.get(locked).status == 401, locked

    page.goto("/")
    page.get_by_label("Token").fill("still-wrong")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("not this server's token")

    page.get_by_label("Token").fill(live.token)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    (cookie,) = context.cookies()
    assert cookie["name"] == "naiad_token"
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # no script can read the token
    assert page.request.get("/api/v1/runs").status == 200

    for link, heading in SECTIONS.items():
        page.get_by_role("navigation", name="Main").get_by_role("link", name=link).click()
        expect(page.locator("main h1")).to_contain_text(heading)

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_label("Token")).to_be_visible()
    assert context.cookies() == []


def test_token_link_logs_in_and_keeps_the_page_asked_for(logged_out, live: LiveServer) -> None:  # type: ignore[no-untyped-def]
    logged_out.goto(f"/?token={live.token}#/jobs")
    expect(logged_out.locator("main h1")).to_have_text("Jobs")
    assert "token" not in logged_out.url  # the redirect dropped it from the address and history


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/?token=%00%ff", None),
        ("GET", "/?token=", None),
        ("GET", "/static/../../etc/passwd", None),
        ("GET", "/static/%2e%2e/%2e%2e/naiad/settings.py", None),
        ("GET", "/static/no-such-file.js", None),
        ("POST", "/login", b"\xff\xfe\x00token=%ZZ"),
        ("POST", "/login", b"token=" + b"x" * 10_000),
        ("POST", "/logout", None),
    ],
)
def test_console_routes_never_answer_500(
    live: LiveServer, method: str, path: str, body: bytes | None
) -> None:
    response = httpx.request(method, live.url + path, content=body, timeout=10)
    assert response.status_code < 500, response.text
