"""The SDK raises the error class the server's ``code`` names, whatever the HTTP status."""

import httpx
import pytest

from naiad.core.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    NaiadError,
    NotFound,
    ServerError,
    Unauthorized,
)
from naiad.sdk.http import raise_for


def answer(status: int, body: object) -> httpx.Response:
    request = httpx.Request("GET", "http://127.0.0.1:8765/api/v1/runs")
    if isinstance(body, str):
        return httpx.Response(status, text=body, request=request)
    return httpx.Response(status, json=body, request=request)


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (403, "forbidden", Forbidden),
        (409, "conflict", Conflict),
        (400, "not_found", NotFound),  # the code decides, not the status
        (415, "unsupported_media_type", InvalidInput),
        (503, "home_lost", ServerError),
        (507, "insufficient_storage", ServerError),
        (404, "http_error", NotFound),  # a code the SDK has no class for: by status
        (422, "model_error", InvalidInput),
        (503, "queue_full", ServerError),
    ],
)
def test_error_class_by_code(status: int, code: str, error: type[NaiadError]) -> None:
    with pytest.raises(NaiadError) as raised:
        raise_for(answer(status, {"error": code, "message": "Said why.", "detail": None}))
    assert type(raised.value) is error
    assert raised.value.message == "Said why." and raised.value.status_code == status


def test_an_answer_without_a_body_maps_by_status() -> None:
    with pytest.raises(ServerError, match="HTTP 502: Bad Gateway"):
        raise_for(answer(502, "Bad Gateway"))
    with pytest.raises(InvalidInput):
        raise_for(answer(418, ["not", "an", "object"]))


def test_unauthorized_says_where_to_find_this_homes_server() -> None:
    with pytest.raises(Unauthorized, match="`naiad server status` shows this home's"):
        raise_for(answer(401, {"error": "unauthorized", "message": "No token.", "detail": None}))
