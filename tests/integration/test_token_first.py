"""The token is checked before anything else: before a body is read, uploads included, and
on the API's own description (openapi.json, /docs), which only /health answers without.
"""

import json

import anyio
import pytest
from fastapi.testclient import TestClient

API = "/api/v1"
CLAIMED = 23 * 2**20  # a 23 MB body, as announced by its Content-Length


def call_unread(app, method: str, path: str, headers: list[tuple[bytes, bytes]]):  # type: ignore[no-untyped-def]
    """Call the ASGI app with a body that is announced and never sent unless asked for:
    (status, JSON answer, how many body bytes the app took)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"testserver"),
            (b"content-type", b"application/octet-stream"),
            (b"content-length", str(CLAIMED).encode()),
            *headers,
        ],
        "client": ("testclient", 50000),
        "server": ("testserver", 80),
    }
    taken = 0
    messages: list[dict] = []

    async def receive() -> dict:
        nonlocal taken
        chunk = b"x" * 65536
        taken += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": taken < CLAIMED}

    async def send(message: dict) -> None:
        messages.append(message)

    anyio.run(app, scope, receive, send)
    start = next(m for m in messages if m["type"] == "http.response.start")

    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return start["status"], json.loads(body), taken


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", f"{API}/runs"),  # under the JSON body limit
        ("PUT", f"{API}/runs/abc/artifacts/big.bin"),  # uploads have limits of their own
        ("PUT", f"{API}/sources"),
        ("PUT", f"{API}/models/uploads"),
        ("POST", "/endpoints/e/invocations"),
    ],
)
@pytest.mark.parametrize(
    "credentials",
    [[], [(b"authorization", b"Bearer not-the-token")], [(b"cookie", b"naiad_token=wrong")]],
)
def test_a_body_without_the_token_is_refused_unread(
    app,  # type: ignore[no-untyped-def]
    method: str,
    path: str,
    credentials: list[tuple[bytes, bytes]],
) -> None:
    status, answer, taken = call_unread(app, method, path, credentials)
    assert status == 401, answer
    assert answer["error"] == "unauthorized" and "Authorization: Bearer" in answer["message"]
    assert taken == 0, f"the server read {taken} bytes of a body it then refused"


def test_with_the_token_the_same_body_is_read(app) -> None:  # type: ignore[no-untyped-def]
    """The control: the guard lets a right token through, and then the body is taken."""
    bearer = [(b"authorization", f"Bearer {app.state.naiad.token}".encode())]
    status, answer, taken = call_unread(app, "PUT", f"{API}/sources", bearer)
    assert status == 400 and "gzip" in answer["message"], answer  # read, then judged
    assert taken >= CLAIMED


@pytest.mark.parametrize("path", [f"{API}/openapi.json", f"{API}/docs"])
def test_the_api_description_needs_the_token_like_the_rest(app, path: str) -> None:  # type: ignore[no-untyped-def]
    token = app.state.naiad.token
    anonymous = TestClient(app)
    refused = anonymous.get(path)
    assert refused.status_code == 401
    assert "log in to the console" in refused.json()["message"]
    assert anonymous.get(f"{API}/health").status_code == 200  # the one route without it

    assert TestClient(app, headers={"authorization": f"Bearer {token}"}).get(path).is_success
    console = TestClient(app, cookies={"naiad_token": token})  # a logged-in browser
    assert console.get(path).is_success
