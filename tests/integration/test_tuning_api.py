"""/api/v1/tuning-jobs on SQLite and PostgreSQL: every bad request is answered with a
sentence and leaves nothing stored (searches that run are in tests/e2e/test_tuning.py)."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from naiad.testing.jobs import source_tarball

SCRIPT = """
from naiad import runtime
ctx = runtime.context()
x = ctx.hyperparameters.get_float("x")
for step in range(3):
    ctx.log_metrics({"loss": (x - 0.3) ** 2 + 1.0 / (step + 1)}, step=step)
"""


def _source(api: TestClient) -> str:
    answer = api.put("/api/v1/sources", content=source_tarball({"train.py": SCRIPT}))
    assert answer.status_code == 201, answer.text
    return str(answer.json()["source_uri"])


def _body(source_uri: str, **fields: Any) -> dict[str, Any]:
    return {
        "name": "search",
        "template": {"entrypoint": "train.py", "source_uri": source_uri},
        "space": [{"name": "x", "type": "continuous", "min": 0.0, "max": 1.0}],
        "objective": {"metric": "loss", "direction": "minimize"},
        "strategy": "random",
        "max_trials": 3,
        "parallel": 2,
        "seed": 4,
        **fields,
    }


@pytest.mark.parametrize(
    ("change", "status", "says"),
    [
        ({"warm_start": ["nope"]}, 400, "No tuning job named 'nope'"),
        ({"template": {"entrypoint": "missing.py"}}, 400, "is not in the source directory"),
        ({"template": {"entrypoint": "train.py", "nodes": 64}}, 400, "The trials' template"),
        (
            {"template": {"entrypoint": "train.py", "inputs": {"train": "/nowhere"}}},
            400,
            "use one of file://, s3://",
        ),
        ({"strategy": "grid"}, 422, "'x' is continuous"),
        ({"max_trials": 0}, 422, "greater than or equal to 1"),
        ({"objective": {"metric": "bad key!"}}, 422, "Objective metric"),
    ],
)
def test_bad_tuning_jobs_are_refused_and_nothing_is_stored(
    api: TestClient, change: dict[str, Any], status: int, says: str
) -> None:
    source = _source(api)
    body = _body(source, **change)
    if "template" in change:
        body["template"] = {"source_uri": source, **change["template"]}
    answer = api.post("/api/v1/tuning-jobs", json=body)
    assert answer.status_code == status, answer.text
    assert says in answer.text
    assert api.get("/api/v1/tuning-jobs").json() == []
    assert api.get("/api/v1/jobs").json() == []


def test_a_warm_start_needs_the_same_search(api: TestClient) -> None:
    source = _source(api)
    first = _body(source, name="first")
    assert api.post("/api/v1/tuning-jobs", json=first).status_code == 201
    api.post("/api/v1/tuning-jobs/first/stop")
    other_space = _body(
        source,
        space=[{"name": "y", "type": "integer", "min": 1, "max": 3}],
        warm_start=["first"],
    )
    answer = api.post("/api/v1/tuning-jobs", json=other_space)
    assert answer.status_code == 400 and "needs the same hyperparameters" in answer.text
    other_metric = _body(source, objective={"metric": "acc"}, warm_start=["first"])
    answer = api.post("/api/v1/tuning-jobs", json=other_metric)
    assert answer.status_code == 400 and "needs the same objective" in answer.text
    again = api.post("/api/v1/tuning-jobs", json=first)
    assert again.status_code == 409 and "already exists" in again.text


def test_unknown_tuning_jobs_are_404s_with_a_hint(api: TestClient) -> None:
    for method, path in [
        ("GET", "/api/v1/tuning-jobs/nope"),
        ("GET", "/api/v1/tuning-jobs/nope/trials"),
        ("GET", "/api/v1/tuning-jobs/nope/importances"),
        ("POST", "/api/v1/tuning-jobs/nope/stop"),
    ]:
        answer = api.request(method, path)
        assert answer.status_code == 404, (path, answer.text)
        assert "naiad tuning ls" in answer.json()["message"]
    answer = api.post("/api/v1/tuning-jobs/nope/register", json={"model": "m"})
    assert answer.status_code == 404
