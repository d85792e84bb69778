"""Named connections through the REST API, on SQLite and PostgreSQL: secrets stored but
never listed, clear refusals, and a connection that a job names checked at submission."""

from fastapi.testclient import TestClient

URL = "postgresql://reader:s3cr3t-pw@db.internal:5432/warehouse"


def test_create_show_mask_replace_delete(api: TestClient) -> None:
    made = api.post(
        "/api/v1/connections", json={"name": "dw", "kind": "sql", "url": URL, "description": "x"}
    )
    assert made.status_code == 201, made.text
    assert made.json()["url"] == "postgresql://reader:***@db.internal:5432/warehouse"
    assert made.json()["has_secret"] is True
    for listed in (api.get("/api/v1/connections").text, api.get("/api/v1/connections/dw").text):
        assert "s3cr3t-pw" not in listed and "dw" in listed
    assert api.get("/api/v1/connections/dw/credentials").json()["url"] == URL

    again = api.post("/api/v1/connections", json={"name": "dw", "kind": "sql", "url": URL})
    assert again.status_code == 409 and "replace" in again.json()["message"]
    assert api.get("/api/v1/connections/dw/credentials").json()["url"] == URL  # kept

    other = URL.replace("s3cr3t-pw", "rotated")
    replaced = api.post(
        "/api/v1/connections",
        params={"replace": "true"},
        json={"name": "dw", "kind": "sql", "url": other},
    )
    assert replaced.status_code == 201
    assert api.get("/api/v1/connections/dw/credentials").json()["url"] == other

    assert api.delete("/api/v1/connections/dw").status_code == 204
    gone = api.get("/api/v1/connections/dw")
    assert gone.status_code == 404 and "naiad connections create" in gone.json()["message"]


def test_bad_connections_are_refused_with_the_reason(api: TestClient) -> None:
    cases = [
        ({"name": "a b", "kind": "sql", "url": URL}, "is not valid"),
        ({"name": "x", "kind": "sql"}, "needs url"),
        ({"name": "x", "kind": "sql", "url": "nope"}, "not a database URL"),
        ({"name": "x", "kind": "mongo", "url": URL}, "sql"),
        ({"name": "x", "kind": "dynamodb", "url": URL}, "belongs to a sql connection"),
        ({"name": "x", "kind": "dynamodb", "access_key_id": "AK"}, "together"),
    ]
    for body, words in cases:
        answer = api.post("/api/v1/connections", json=body)
        assert answer.status_code in (400, 422), (body, answer.text)
        assert words in answer.text, (body, answer.text)
    assert api.get("/api/v1/connections").json() == []


def test_check_says_why_a_database_cannot_be_reached(api: TestClient) -> None:
    api.post(
        "/api/v1/connections",
        json={"name": "closed", "kind": "sql", "url": "postgresql://u:pw@127.0.0.1:9/db"},
    )
    checked = api.post("/api/v1/connections/closed/check")
    assert checked.status_code == 200
    result = checked.json()
    assert result["ok"] is False and "sql://closed: could not connect" in result["message"]
    assert ":pw@" not in result["message"]
