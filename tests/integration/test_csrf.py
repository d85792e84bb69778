"""Writes the console's session cookie authenticates must come from the server's own pages.

SameSite=Strict counts every port of 127.0.0.1 as one site, so a page served on another
local port can make a logged-in browser send the cookie with a form it submits. Such a
write is refused with 403 (its Origin, or lacking one its Referer, is not this server);
reads, Bearer-token calls and logging in are unaffected.
"""

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

API = "/api/v1"
ELSEWHERE = "http://127.0.0.1:9999"  # a page on another local port
HERE = "http://testserver"  # the TestClient's origin


@pytest.fixture
def script(api: TestClient) -> TestClient:
    """A script: the Bearer token, no cookie (it runs the app's lifespan)."""
    return api


@pytest.fixture
def browser(app, script: TestClient) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    """A logged-in browser: the session cookie, no Authorization header."""
    client = TestClient(app, cookies={"naiad_token": app.state.naiad.token})
    yield client
    client.close()


def refused(response) -> str:  # type: ignore[no-untyped-def]
    """The refusal's sentence, after checking it is a 403 that says what to do."""
    assert response.status_code == 403, response.text
    body = response.json()
    assert body["error"] == "forbidden"
    assert "Authorization: Bearer" in body["message"] and body["message"].endswith(".")
    return body["message"]


def test_a_cookie_write_from_another_port_is_refused_and_changes_nothing(
    browser: TestClient, script: TestClient
) -> None:
    assert script.post(f"{API}/experiments", json={"name": "kept"}).status_code == 201

    message = refused(browser.delete(f"{API}/experiments/kept", headers={"origin": ELSEWHERE}))
    assert ELSEWHERE in message
    assert script.get(f"{API}/experiments/kept").status_code == 200
    for body_less in ("jobs/digits-1/stop", "models/digits/versions/1/quantize"):
        refused(browser.post(f"{API}/{body_less}", headers={"origin": ELSEWHERE}))
    created = browser.post(f"{API}/experiments", json={"name": "x"}, headers={"origin": ELSEWHERE})
    refused(created)
    assert script.get(f"{API}/experiments/x").status_code == 404

    # The same writes from the console itself go through.
    assert browser.delete(f"{API}/experiments/kept", headers={"origin": HERE}).status_code == 204
    stop = browser.post(f"{API}/jobs/digits-1/stop", headers={"origin": HERE})
    assert stop.status_code == 404  # past the guard: there is no such job


@pytest.mark.parametrize(
    "headers",
    [
        {},  # neither Origin nor Referer: cannot tell where it came from
        {"origin": "null"},  # a sandboxed or no-referrer page
        {"referer": f"{ELSEWHERE}/attack.html"},
        {"origin": ELSEWHERE, "referer": f"{HERE}/"},  # Origin is what counts when sent
        {"origin": "http://testserver.evil.example"},
        {"origin": "https://testserver:8443"},
    ],
)
def test_a_cookie_write_without_this_servers_origin_is_refused(
    browser: TestClient, headers: dict[str, str]
) -> None:
    refused(browser.post(f"{API}/experiments", json={"name": "e"}, headers=headers))


@pytest.mark.parametrize(
    "headers",
    [
        {"origin": HERE},
        {"origin": "http://TestServer:80"},  # the default port and case do not matter
        {"referer": f"{HERE}/#/jobs/digits-1"},  # no Origin: the Referer stands in
    ],
)
def test_a_cookie_write_from_this_server_goes_through(
    browser: TestClient, headers: dict[str, str]
) -> None:
    response = browser.post(f"{API}/experiments", json={"name": "e"}, headers=headers)
    assert response.status_code == 201, response.text


def test_reads_and_bearer_calls_are_unaffected(browser: TestClient, script: TestClient) -> None:
    assert browser.get(f"{API}/experiments", headers={"origin": ELSEWHERE}).status_code == 200
    made = script.post(f"{API}/experiments", json={"name": "s"}, headers={"origin": ELSEWHERE})
    assert made.status_code == 201, made.text
    assert script.delete(f"{API}/experiments/s").status_code == 204  # no Origin at all


def test_logout_from_another_page_is_refused_and_login_is_not(app, browser: TestClient) -> None:  # type: ignore[no-untyped-def]
    response = browser.post("/logout", headers={"origin": ELSEWHERE}, follow_redirects=False)
    refused(response)
    assert "set-cookie" not in response.headers
    assert browser.get(f"{API}/experiments").status_code == 200  # still logged in

    token = app.state.naiad.token
    login = browser.post(
        "/login",
        content=f"token={token}",
        headers={"origin": ELSEWHERE, "content-type": "application/x-www-form-urlencoded"},
        follow_redirects=False,
    )
    assert login.status_code == 303

    out = browser.post("/logout", headers={"origin": HERE}, follow_redirects=False)
    assert out.status_code == 303 and 'naiad_token=""' in out.headers["set-cookie"]


def test_console_pages_send_their_origin_with_forms(browser: TestClient) -> None:
    """Under Referrer-Policy no-referrer a browser sends "Origin: null" with a form's POST,
    which the guard refuses; the console's pages must let the Log out form say its origin."""
    page = browser.get("/")
    assert page.status_code == 200
    assert page.headers["referrer-policy"] == "same-origin"
