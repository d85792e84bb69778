"""The REST API for experiments, runs, params, tags, metrics and search, on every backend."""

import math

import numpy as np
import pytest
from fastapi.testclient import TestClient

from naiad.core.series import Series, downsample


def make_run(api: TestClient, experiment: str = "digits", **body) -> dict:  # type: ignore[no-untyped-def]
    response = api.post("/api/v1/runs", json={"experiment": experiment, **body})
    assert response.status_code == 201, response.text
    return response.json()


def log(api: TestClient, run_id: str, batch_id: str, metrics: dict) -> dict:
    body = {"batch_id": batch_id, "metrics": metrics}
    response = api.post(f"/api/v1/runs/{run_id}/metrics", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def columns(values: list, start: int = 0) -> dict:
    n = len(values)
    return {"steps": list(range(start, start + n)), "timestamps": [1.0e9] * n, "values": values}


def test_experiment_lifecycle(api: TestClient) -> None:
    created = api.post("/api/v1/experiments", json={"name": "digits", "description": "8x8"})
    assert created.status_code == 201
    duplicate = api.post("/api/v1/experiments", json={"name": "digits"})
    assert duplicate.status_code == 409
    assert "already exists" in duplicate.json()["message"]
    make_run(api, "digits")
    listed = api.get("/api/v1/experiments").json()
    assert [(e["name"], e["run_count"]) for e in listed] == [("digits", 1)]
    patched = api.patch("/api/v1/experiments/digits", json={"tags": {"team": "vision"}})
    assert patched.json()["tags"] == {"team": "vision"}
    assert api.delete("/api/v1/experiments/digits").status_code == 204
    assert api.get("/api/v1/experiments/digits").status_code == 404


def test_run_create_params_tags_status(api: TestClient) -> None:
    run = make_run(api, params={"lr": 0.001, "epochs": 20, "opt": "adam"}, tags={"who": "me"})
    assert run["status"] == "Running"
    assert run["params"] == {"lr": 0.001, "epochs": 20, "opt": "adam"}
    rid = run["id"]
    # Params are write-once: the same value is fine, a different one is refused.
    assert api.post(f"/api/v1/runs/{rid}/params", json={"params": {"lr": 0.001}}).status_code == 200
    changed = api.post(f"/api/v1/runs/{rid}/params", json={"params": {"lr": 0.1}})
    assert changed.status_code == 409
    assert api.get(f"/api/v1/runs/{rid}").json()["params"]["lr"] == 0.001
    api.post(f"/api/v1/runs/{rid}/tags", json={"tags": {"who": "you", "k": "v"}})
    done = api.patch(f"/api/v1/runs/{rid}", json={"status": "Completed"}).json()
    assert done["status"] == "Completed" and done["end_time"] is not None
    assert done["tags"] == {"who": "you", "k": "v"}
    # An ended run stays ended.
    again = api.patch(f"/api/v1/runs/{rid}", json={"status": "Failed"})
    assert again.status_code == 409
    assert api.get(f"/api/v1/runs/{rid}").json()["status"] == "Completed"


def test_metrics_whole_and_idempotent(api: TestClient) -> None:
    rid = make_run(api)["id"]
    first = log(api, rid, "b1", {"loss": columns([3.0, 2.0, 1.0]), "acc": columns([0.1, 0.5, 0.9])})
    assert first == {"batch_id": "b1", "points": 6, "duplicate": False}
    # A retry of the same batch id stores nothing twice.
    assert log(api, rid, "b1", {"loss": columns([3.0, 2.0, 1.0])})["duplicate"] is True
    log(api, rid, "b2", {"loss": columns([0.5], start=3)})
    history = api.get(f"/api/v1/runs/{rid}/metrics/loss").json()
    assert history["steps"] == [0, 1, 2, 3]
    assert history["values"] == [3.0, 2.0, 1.0, 0.5]
    assert history["downsampled"] is False
    summary = api.get(f"/api/v1/runs/{rid}").json()["metrics"]["loss"]
    assert summary["value"] == 0.5 and summary["min"] == 0.5 and summary["max"] == 3.0
    assert summary["count"] == 4 and summary["step"] == 3
    assert sorted(api.get(f"/api/v1/runs/{rid}/metrics").json()) == ["acc", "loss"]


def test_nan_and_inf_are_stored_as_such(api: TestClient) -> None:
    rid = make_run(api)["id"]
    log(api, rid, "b", {"loss": columns([1.0, "Infinity", "NaN", "-Infinity"])})
    history = api.get(f"/api/v1/runs/{rid}/metrics/loss").json()
    assert history["values"] == [1.0, "Infinity", "NaN", "-Infinity"]
    summary = api.get(f"/api/v1/runs/{rid}").json()["metrics"]["loss"]
    assert summary["value"] == "-Infinity" and summary["max"] == "Infinity"


def test_downsampled_history_keeps_extremes(api: TestClient) -> None:
    rid = make_run(api)["id"]
    values = [math.sin(i / 50) for i in range(10_000)]
    values[1234] = 50.0  # a spike a chart must not lose
    log(api, rid, "b", {"loss": columns(values)})
    body = api.get(f"/api/v1/runs/{rid}/metrics/loss", params={"max_points": 100}).json()
    assert body["downsampled"] is True and body["total_points"] == 10_000
    assert len(body["steps"]) == 100
    assert max(body["max"]) == 50.0
    assert sum(body["count"]) == 10_000
    assert min(body["min"]) == pytest.approx(min(values))


def test_downsampled_history_matches_the_whole_series_downsampled(api: TestClient) -> None:
    """However a store reads it, a chart's buckets are those of the whole series: with
    chunks out of order and steps logged again (a retried job), the latest point wins."""
    rid = make_run(api)["id"]

    def batch(steps: range, value: float) -> dict:
        return {
            "steps": list(steps),
            "timestamps": [1.0e9 + s + value for s in steps],
            "values": [value + s / 1000 for s in steps],
        }

    log(api, rid, "b1", {"loss": batch(range(2000, 3000), 0.1)})
    log(api, rid, "b2", {"loss": batch(range(0, 2500), 0.2)})  # repeats 2000-2499
    log(api, rid, "b3", {"loss": batch(range(2900, 4000), 0.3)})  # repeats 2900-2999
    whole = api.get(f"/api/v1/runs/{rid}/metrics/loss").json()
    assert whole["total_points"] == 4000
    series = Series(
        np.array(whole["steps"]), np.array(whole["timestamps"]), np.array(whole["values"])
    )
    expected = downsample(series, 64)
    got = api.get(f"/api/v1/runs/{rid}/metrics/loss", params={"max_points": 64}).json()
    assert got["downsampled"] is True and got["total_points"] == 4000
    assert got["steps"] == expected.steps.tolist()
    assert got["timestamps"] == expected.timestamps.tolist()
    assert got["min"] == expected.min.tolist() and got["max"] == expected.max.tolist()
    assert got["values"] == pytest.approx(expected.values.tolist())
    assert got["count"] == expected.count.tolist()
    assert whole["timestamps"][2400] == 1.0e9 + 2400 + 0.2  # b2 arrived after b1


def test_search_and_sort_by_metrics_and_params(api: TestClient) -> None:
    ids = {}
    for lr, acc in [(0.1, 0.80), (0.01, 0.95), (0.001, 0.90)]:
        rid = make_run(api, params={"lr": lr, "opt": "adam" if lr < 0.05 else "sgd"})["id"]
        log(api, rid, "b", {"acc": columns([acc])})
        ids[lr] = rid
    make_run(api, "other")
    best = api.get(
        "/api/v1/runs", params={"experiment": "digits", "order_by": "metrics.acc DESC"}
    ).json()
    assert best["total"] == 3
    assert [r["id"] for r in best["items"]] == [ids[0.01], ids[0.001], ids[0.1]]
    by_lr = api.post(
        "/api/v1/runs/search", json={"order_by": ["params.lr ASC"], "experiment": "digits"}
    )
    assert [r["params"]["lr"] for r in by_lr.json()["items"]] == [0.001, 0.01, 0.1]
    found = api.get(
        "/api/v1/runs", params={"filter": "metrics.acc > 0.85 and params.opt = 'adam'"}
    ).json()
    assert sorted(r["id"] for r in found["items"]) == sorted([ids[0.01], ids[0.001]])
    bad = api.get("/api/v1/runs", params={"filter": "metrics.acc >> 1"})
    assert bad.status_code == 400 and "filter" in bad.json()["message"].lower()


def test_compare(api: TestClient) -> None:
    a = make_run(api, params={"lr": 0.1, "bs": 32})["id"]
    b = make_run(api, params={"lr": 0.01, "bs": 32})["id"]
    log(api, a, "x", {"acc": columns([0.8])})
    body = api.get("/api/v1/runs/compare", params=[("run_id", a), ("run_id", b)]).json()
    assert body["differing_params"] == ["lr"]
    assert body["params"]["bs"] == [32, 32]
    assert body["metrics"]["acc"] == [0.8, None]
    missing = api.get("/api/v1/runs/compare", params=[("run_id", a), ("run_id", "nope")])
    assert missing.status_code == 404


def test_auth_required(app) -> None:  # type: ignore[no-untyped-def]
    with TestClient(app) as anonymous:
        assert anonymous.get("/api/v1/health").status_code == 200
        refused = anonymous.get("/api/v1/experiments")
        assert refused.status_code == 401
        assert "token" in refused.json()["message"]
        wrong = anonymous.get("/api/v1/experiments", headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401


def test_token_file_is_private(settings) -> None:  # type: ignore[no-untyped-def]
    from naiad.server.app import create_app

    app = create_app(settings)
    mode = settings.layout.token_file.stat().st_mode & 0o777
    assert mode == 0o600
    token = settings.layout.token_file.read_text().strip()
    assert app.state.naiad.token == token and len(token) >= 32
    app.state.naiad.engine.dispose()


def test_artifacts_that_could_run_as_pages_download_as_attachments(api: TestClient) -> None:
    """An HTML or SVG artifact must never run on the console's origin; images, text and
    JSON still show inline (the console previews them)."""
    run = make_run(api)
    for path in ("report.html", "plot.svg", "résumé.html", "loss.png", "notes.txt"):
        assert api.put(f"/api/v1/runs/{run['id']}/artifacts/{path}", content=b"<b>x</b>").is_success
    for path, attachment in (
        ("report.html", True),
        ("plot.svg", True),
        ("résumé.html", True),
        ("loss.png", False),
        ("notes.txt", False),
    ):
        response = api.get(f"/api/v1/runs/{run['id']}/artifacts/{path}")
        assert response.status_code == 200 and response.content == b"<b>x</b>"
        assert response.headers["x-content-type-options"] == "nosniff"
        disposition = response.headers.get("content-disposition", "")
        assert disposition.startswith("attachment") == attachment, (path, disposition)


def test_json_sent_as_text_plain_is_told_the_content_type(api: TestClient) -> None:
    sent = api.post(
        "/api/v1/experiments", content=b'{"name": "typed"}', headers={"content-type": "text/plain"}
    )
    assert sent.status_code == 415
    assert "Content-Type: application/json" in sent.json()["message"]
    assert api.get("/api/v1/experiments/typed").status_code == 404  # nothing stored
