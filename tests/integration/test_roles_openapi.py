"""Every route in the OpenAPI document, called as each kind of caller: a viewer writes
nothing, an editor reaches no admin route, a read-only key is a viewer, a revoked key is
refused at once everywhere, and each refusal names the role the call needs.

The expectations are written out here, independently of the server's rules, so a route
added without a decision about who may call it fails this test.
"""

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

# Who may call what beyond a viewer's reads: (method, path template).
ADMIN_ONLY = {
    ("GET", "/api/v1/users"),
    ("POST", "/api/v1/users"),
    ("GET", "/api/v1/users/{name}"),
    ("PATCH", "/api/v1/users/{name}"),
    ("DELETE", "/api/v1/users/{name}"),
    ("GET", "/api/v1/audit"),
    ("POST", "/api/v1/admin/gc"),
    ("GET", "/api/v1/keys/admin"),
    ("GET", "/api/v1/connections/{name}/credentials"),
    ("POST", "/api/v1/notebooks"),  # a notebook server's kernels act as the admin
    ("DELETE", "/api/v1/notebooks/{name}"),
    ("POST", "/api/v1/notebooks/{name}/stop"),
    ("POST", "/api/v1/notebooks/{name}/start"),
    ("GET", "/notebooks/{name}/lab"),  # the proxy to a notebook server: not in the document
    ("POST", "/api/v1/projects"),
    ("DELETE", "/api/v1/projects/{name}"),
    ("GET", "/api/v1/projects/{name}/members"),
    ("PUT", "/api/v1/projects/{name}/members/{user}"),
    ("DELETE", "/api/v1/projects/{name}/members/{user}"),
}
VIEWER_WRITES = {
    ("POST", "/api/v1/runs/search"),
    ("POST", "/api/v1/keys"),  # their own keys
    ("DELETE", "/api/v1/keys/{access_key_id}"),
    ("PATCH", "/api/v1/users/me"),  # their own password
}
PUBLIC = {("GET", "/api/v1/health"), ("POST", "/api/v1/login")}
READS = {"GET", "HEAD"}


def _operations(api: TestClient) -> list[tuple[str, str]]:
    doc = api.get("/api/v1/openapi.json").json()
    found = [(m.upper(), p) for p, ops in doc["paths"].items() for m in ops]
    return [*found, ("GET", "/notebooks/{name}/lab")]


def _url(template: str) -> str:
    return re.sub(r"\{version\}", "1", re.sub(r"\{(?!version)[^}]+\}", "nothing-here", template))


def _call(api: TestClient, token: str, method: str, template: str) -> Any:
    body = None if method in READS or method == "DELETE" else {}
    if (method, template) == ("POST", "/api/v1/keys"):
        body = {"read_only": True}  # what a read-only key may issue
    return api.request(
        method, _url(template), json=body, headers={"authorization": f"Bearer {token}"}
    )


@pytest.fixture
def tokens(api: TestClient) -> dict[str, str]:
    """A key for each kind of caller, made through the API as an admin would."""
    made = {}
    for name, role in (("vera", "viewer"), ("ed", "editor"), ("ada", "admin")):
        created = api.post("/api/v1/users", json={"name": name, "role": role,
                                                  "password": f"{name}-password"})  # fmt: skip
        assert created.status_code == 201, created.text
        login = api.post("/api/v1/login", json={"user": name, "password": f"{name}-password"})
        assert login.status_code == 201, login.text
        made[role] = login.json()["token"]
    ed = {"authorization": f"Bearer {made['editor']}"}
    made["read-only"] = api.post("/api/v1/keys", json={"read_only": True}, headers=ed).json()[
        "token"
    ]
    revoked = api.post("/api/v1/keys", json={}, headers=ed).json()
    gone = api.delete(f"/api/v1/keys/{revoked['access_key_id']}", headers=ed)
    assert gone.status_code == 204
    made["revoked"] = revoked["token"]
    return made


def _needs(caller: str, method: str, template: str) -> str | None:
    """The role this caller lacks for the call, or None when it may make it."""
    op = (method, template)
    if op in PUBLIC or caller == "admin":
        return None
    if op in ADMIN_ONLY:
        return "admin"
    if caller in ("viewer", "read-only") and method not in READS and op not in VIEWER_WRITES:
        return "editor"
    return None


@pytest.mark.parametrize("caller", ["viewer", "editor", "admin", "read-only"])
def test_each_route_answers_each_role_as_documented(
    api: TestClient, tokens: dict[str, str], caller: str
) -> None:
    wrong = []
    for method, template in _operations(api):
        answer = _call(api, tokens[caller], method, template)
        needed = _needs(caller, method, template)
        if needed is not None:
            message = answer.json().get("message", "") if answer.status_code == 403 else ""
            if answer.status_code != 403 or f"needs the {needed} role" not in message:
                wrong.append(f"{method} {template}: {answer.status_code} {answer.text[:160]}")
        elif answer.status_code in (401, 403) or answer.status_code >= 500:
            wrong.append(f"{method} {template}: {answer.status_code} {answer.text[:160]}")
    assert not wrong, f"{caller}:\n" + "\n".join(wrong)


def test_a_revoked_key_is_refused_on_every_route(api: TestClient, tokens: dict[str, str]) -> None:
    for method, template in _operations(api):
        if (method, template) in PUBLIC:
            continue
        answer = _call(api, tokens["revoked"], method, template)
        assert answer.status_code == 401, f"{method} {template}: {answer.status_code}"
        if template.startswith("/api/"):
            assert "revoked" in answer.json()["message"]


def test_another_projects_objects_are_refused_on_every_route(
    api: TestClient, tokens: dict[str, str]
) -> None:
    """An editor of default with no role in project secret: every route that reaches an
    experiment or run of secret, or works in secret, answers 403 naming the project."""
    made = api.post("/api/v1/projects", json={"name": "secret"})
    assert made.status_code == 201, made.text
    inside = {"x-naiad-project": "secret"}
    assert api.post("/api/v1/experiments", json={"name": "hush"}, headers=inside).is_success
    run = api.post("/api/v1/runs", json={"experiment": "hush"}, headers=inside).json()
    ed = {"authorization": f"Bearer {tokens['editor']}"}
    wrong, reached = [], 0
    for method, template in _operations(api):
        if "{run_id}" in template:
            url = _url(template.replace("{run_id}", run["id"]))
        elif template.startswith("/api/v1/experiments/{name}"):
            url = _url(template.replace("{name}", "hush"))
        else:
            continue
        reached += 1
        body = None if method in READS or method == "DELETE" else {}
        answer = api.request(method, url, json=body, headers=ed)
        if answer.status_code != 403 or "in project 'secret'" not in answer.json()["message"]:
            wrong.append(f"{method} {url}: {answer.status_code} {answer.text[:160]}")
    for method, template in _operations(api):
        if re.fullmatch(r"/api/v1/(runs|experiments|jobs|tuning-jobs|models|endpoints)", template):
            reached += 1
            body = None if method in READS else {}
            answer = api.request(method, template, json=body, headers={**ed, **inside})
            if answer.status_code != 403 or "in project 'secret'" not in answer.text:
                wrong.append(f"{method} {template} in secret: {answer.status_code}")
    assert reached > 20 and not wrong, "\n".join(wrong)
    listed = api.get("/api/v1/runs", headers=ed).json()["items"]
    assert run["id"] not in {r["id"] for r in listed}
