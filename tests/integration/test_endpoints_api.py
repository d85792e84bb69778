"""The endpoints REST API and the invocation proxy on every backend (SQLite, PostgreSQL):
validation, the stored timeline, a rollout that fails and is undone, a canary, the saved
traffic history, delete.

The app runs in-process (its keeper thread included); the replicas are real processes."""

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from naiad.sdk.models import pack_model
from naiad.server.controller.endpoints import EndpointKeeper
from naiad.server.traffic.book import MetricsBook
from naiad.settings import Settings
from naiad.store.tables import EndpointMinuteRow
from naiad.testing.endpoints import broken_model, kill_replicas, replica_pids, scale_model

API = "/api/v1"
ONE_ROW = {"inputs": [[1.0, 2.0, 3.0, 4.0]]}


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("models")
    return {
        "v1": pack_model(scale_model(root / "v1", 1.0)),
        "v2": pack_model(scale_model(root / "v2", 2.0)),
        "broken": pack_model(broken_model(root / "broken")),
    }


@pytest.fixture
def cleanup(settings: Settings) -> Iterator[None]:
    yield
    kill_replicas(settings.home)


def register(api: TestClient, name: str, archive: bytes) -> dict[str, Any]:
    uploaded = api.put(f"{API}/models/uploads", content=archive)
    assert uploaded.status_code == 201, uploaded.text
    body = {"upload_uri": uploaded.json()["source_uri"]}
    response = api.post(f"{API}/models/{name}/versions", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def wait_for(api: TestClient, name: str, done: Callable[[dict], bool], timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        response = api.get(f"{API}/endpoints/{name}")
        endpoint = response.json()
        if response.status_code == 200 and done(endpoint):
            return endpoint
        if time.monotonic() > deadline:
            raise AssertionError(f"endpoint {name} not there in {timeout}s: {endpoint}")
        time.sleep(0.1)


def serving(endpoint: dict) -> bool:
    return endpoint["status"] == "InService" and not endpoint["pending_variants"]


def invoke(api: TestClient, name: str, body: Any = None, **kwargs: Any) -> Any:
    return api.post(f"/endpoints/{name}/invocations", json=body, **kwargs)


def test_deploy_and_update_refuse_bad_requests_with_a_sentence(
    api: TestClient, archives: dict[str, bytes]
) -> None:
    register(api, "scale", archives["v1"])

    def deploy(**body: Any) -> Any:
        return api.post(f"{API}/endpoints", json={"name": "e", **body})

    cases = [
        (deploy(variants=[{"model": "nope"}]), 404, "No model named 'nope'"),
        (deploy(variants=[{"model": "scale:7"}]), 404, "no version 7"),
        (deploy(variants=[{"model": "scale@prod"}]), 404, "no alias 'prod'"),
        (deploy(variants=[{"model": "scale:x"}]), 400, "whole number"),
        (deploy(variants=[{"model": "scale"}, {"model": "scale:1"}]), 400, "unique"),
        (deploy(variants=[{"model": "scale", "weight": 0}]), 400, "add up to 0"),
        (deploy(variants=[{"model": "scale", "replicas": 33}]), 400, "at most 32"),
        (deploy(variants=[{"model": "scale", "replicas": 0}]), 422, "replicas"),
        (
            deploy(
                variants=[{"model": "scale", "autoscaling": {"min_replicas": 3, "max_replicas": 2}}]
            ),
            400,
            "min_replicas (3) is above max_replicas (2); give a max_replicas of at least 3",
        ),
        (
            deploy(
                variants=[
                    {"model": "scale", "name": "a", "autoscaling": {"max_replicas": 20}},
                    {"model": "scale", "name": "b", "replicas": 20},
                ]
            ),
            400,
            "autoscaled variants count their max_replicas",
        ),
        (
            deploy(variants=[{"model": "scale", "autoscaling": {"min_replicas": 0}}]),
            422,
            "max_replicas",
        ),
        (deploy(variants=[]), 422, "variants"),
        (deploy(variants=[{"model": "scale"}], colour="red"), 422, "colour"),
        (
            api.post(
                f"{API}/endpoints", json={"name": "Bad Name", "variants": [{"model": "scale"}]}
            ),
            400,
            "Endpoint name 'Bad Name' is not valid",
        ),
        (
            api.patch(f"{API}/endpoints/e", json={"variants": [{"model": "scale"}]}),
            404,
            "No endpoint named 'e'",
        ),
        (api.delete(f"{API}/endpoints/e"), 404, "No endpoint named 'e'"),
        (api.get(f"{API}/endpoints/e/metrics"), 404, "No endpoint named 'e'"),
        (invoke(api, "e", ONE_ROW), 404, "No endpoint named 'e'"),
        (
            api.post("/endpoints/e/invocations", json=ONE_ROW, headers={"authorization": ""}),
            401,
            "token",
        ),
    ]
    for response, status, words in cases:
        assert response.status_code == status, response.text
        assert words in response.json()["message"], response.text
    assert api.get(f"{API}/endpoints").json() == []


def test_lifecycle_rollback_canary_history_and_delete(
    api: TestClient, archives: dict[str, bytes], settings: Settings, app: Any, cleanup: None
) -> None:
    for archive in (archives["v1"], archives["v2"], archives["broken"]):
        register(api, "scale", archive)
    created = api.post(f"{API}/endpoints", json={"name": "e", "variants": [{"model": "scale:1"}]})
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "Creating"
    assert created.json()["url"].endswith("/endpoints/e/invocations")
    again = api.post(f"{API}/endpoints", json={"name": "e", "variants": [{"model": "scale:1"}]})
    assert again.status_code == 409 and "already exists" in again.json()["message"]
    early = api.patch(f"{API}/endpoints/e", json={"variants": [{"model": "scale:2"}]})
    assert early.status_code == 409 and "Creating" in early.json()["message"]
    served = api.delete(f"{API}/models/scale")
    assert served.status_code == 409 and "served by endpoint(s) e;" in served.json()["message"]
    not_yet = invoke(api, "e", ONE_ROW)
    if not_yet.status_code == 503:  # unless the replica was quicker than this request
        assert not_yet.headers["retry-after"] and "Creating" in not_yet.json()["message"]

    endpoint = wait_for(api, "e", serving)
    replica = endpoint["variants"][0]["live"][0]
    assert replica["healthy"] and replica["restarts"] == 0 and replica["port"]
    answer = invoke(api, "e", ONE_ROW)
    assert answer.status_code == 200 and answer.json()["predictions"] == [[1.0, 2.0, 3.0, 4.0]]
    assert answer.headers["x-naiad-variant"] == "scale-v1"
    bad = invoke(api, "e", {"inputs": [[1.0, 2.0]]})
    assert bad.status_code == 400 and "float32[N, 4]" in bad.json()["message"]

    # A rollout whose replicas cannot start is undone; the old variant never stopped serving.
    broken = api.patch(f"{API}/endpoints/e", json={"variants": [{"model": "scale:3"}]})
    assert broken.status_code == 200 and broken.json()["status"] == "Updating"
    endpoint = wait_for(
        api,
        "e",
        lambda e: e["status"] == "InService" and "rolled back" in (e["status_reason"] or ""),
    )
    assert "exited before it answered /ping" in endpoint["status_reason"]
    assert [v["model"] for v in endpoint["variants"]] == ["scale:1"]
    assert invoke(api, "e", ONE_ROW).status_code == 200

    canary = [
        {"model": "scale:1", "name": "scale-v1", "weight": 90},
        {"model": "scale:2", "weight": 10},
    ]
    assert api.patch(f"{API}/endpoints/e", json={"variants": canary}).status_code == 200
    endpoint = wait_for(api, "e", serving)
    assert [(v["name"], v["weight"]) for v in endpoint["variants"]] == [
        ("scale-v1", 90.0),
        ("scale-v2", 10.0),
    ]
    assert endpoint["variants"][0]["live"][0]["pid"] == replica["pid"]  # kept, not restarted
    seen = {invoke(api, "e", ONE_ROW).headers["x-naiad-variant"] for _ in range(120)}
    assert seen == {"scale-v1", "scale-v2"}
    metrics = api.get(f"{API}/endpoints/e/metrics", params={"window": 30}).json()
    assert {m["variant"] for m in metrics["variants"]} == {"scale-v1", "scale-v2"}
    check_history(api, app)
    assert [t["status"] for t in endpoint["transitions"]] == [
        "Creating",
        "InService",
        "Updating",
        "InService",
        "Updating",
        "InService",
    ]

    deleting = api.delete(f"{API}/endpoints/e")
    assert deleting.status_code == 202 and deleting.json()["status"] == "Deleting"
    assert api.patch(f"{API}/endpoints/e", json={"variants": canary}).status_code == 409
    deadline = time.monotonic() + 30
    while api.get(f"{API}/endpoints/e").status_code != 404:
        assert time.monotonic() < deadline, "endpoint not removed"
        time.sleep(0.1)
    assert replica_pids(settings.home) == []
    assert not (Path(settings.home) / "endpoints" / "e").exists()
    with app.state.naiad.sessions() as session:  # its history went with it
        assert session.scalar(select(func.count()).select_from(EndpointMinuteRow)) == 0


def history_requests(api: TestClient, **params: Any) -> dict[str, int]:
    response = api.get(f"{API}/endpoints/e/metrics/history", params=params)
    assert response.status_code == 200, response.text
    return {
        v: sum(p["requests"] for p in points) for v, points in response.json()["variants"].items()
    }


def check_history(api: TestClient, app: Any) -> None:
    """Every request the live figures count is in the history: from memory before the
    minutes are saved, from the database after, and from the database alone once the
    server's memory is gone (as after a restart)."""
    keeper = app.state.naiad.services.get(EndpointKeeper)
    assert keeper is not None

    def totals() -> dict[str, int]:
        metrics = api.get(f"{API}/endpoints/e/metrics").json()
        return {m["variant"]: m["requests"] for m in metrics["variants"]}

    first = totals()
    time.sleep(1.5)  # a scrape or two more: counts settle once the load has stopped
    while (now := totals()) != first:
        first = now
        time.sleep(1.5)
    assert now["scale-v1"] > 0 and now["scale-v2"] > 0
    assert history_requests(api) == now
    keeper.save_history()
    assert history_requests(api, since=600, step=300) == now
    keeper.book = MetricsBook()  # what a new server starts with
    assert history_requests(api, since=86400) == now
    too_fine = api.get(f"{API}/endpoints/e/metrics/history", params={"step": 90})
    assert too_fine.status_code == 400 and "whole number of minutes" in too_fine.json()["message"]
    gone = api.get(f"{API}/endpoints/nope/metrics/history")
    assert gone.status_code == 404 and "No endpoint named 'nope'" in gone.json()["message"]
