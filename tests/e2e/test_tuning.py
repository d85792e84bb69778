"""Tuning jobs on a live server: trials are real jobs of a real script; early stopping
stops them through the stop path; a server SIGKILLed mid-search resumes it."""

import itertools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from naiad.core.home import HomeLayout
from naiad.testing import postgres
from naiad.testing.jobs import source_tarball
from naiad.testing.live import LiveServer

CURVE = (Path(__file__).parent / "jobs" / "tuning_curve.py").read_text()
OBJECTIVE = (Path(__file__).parents[2] / "examples" / "tuning" / "objective.py").read_text()
ENDED = ("Completed", "Failed", "Stopped")


@pytest.fixture(scope="module")
def api(live: LiveServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {live.token}"}
    with httpx.Client(base_url=f"{live.url}/api/v1", headers=headers, timeout=30) as client:
        yield client


def _source(api: httpx.Client, files: dict[str, str]) -> str:
    answer = api.put("/sources", content=source_tarball(files))
    assert answer.status_code == 201, answer.text
    return str(answer.json()["source_uri"])


def _create(api: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    answer = api.post("/tuning-jobs", json=body)
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def _wait(api: httpx.Client, name: str, timeout: float = 90) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.get(f"/tuning-jobs/{name}").json()
        if job["status"] in ENDED:
            return dict(job)
        time.sleep(0.3)
    raise AssertionError(f"tuning job {name} did not end in {timeout}s: {job}")


def _trials(api: httpx.Client, name: str) -> list[dict[str, Any]]:
    return list(api.get(f"/tuning-jobs/{name}/trials").json())


def _curve(api: httpx.Client, name: str, **fields: Any) -> dict[str, Any]:
    hyperparameters = {"steps": 6, "step_seconds": 0.2, **fields.pop("hyperparameters", {})}
    template = {
        "entrypoint": "tuning_curve.py",
        "source_uri": _source(api, {"tuning_curve.py": CURVE}),
        "hyperparameters": hyperparameters,
        **fields.pop("template", {}),
    }
    body = {
        "name": name,
        "template": template,
        "space": [{"name": "quality", "type": "continuous", "min": 0.0, "max": 1.0}],
        "objective": {"metric": "score", "direction": "maximize"},
        "strategy": "random",
        "seed": 7,
        **fields,
    }
    return _create(api, body)


def test_a_search_finds_a_better_objective_than_its_first_trial(api: httpx.Client) -> None:
    body = {
        "name": "bowl",
        "template": {
            "entrypoint": "objective.py",
            "source_uri": _source(api, {"objective.py": OBJECTIVE}),
            "hyperparameters": {"steps": 3, "step_seconds": 0.05},
        },
        "space": [
            {"name": "lr", "type": "continuous", "min": 1e-4, "max": 1.0, "scaling": "log"},
            {"name": "width", "type": "integer", "min": 1, "max": 6},
            {"name": "act", "type": "categorical", "values": ["relu", "gelu", "tanh"]},
        ],
        "objective": {"metric": "score", "direction": "maximize"},
        "strategy": "tpe",
        "max_trials": 8,
        "parallel": 2,
        "seed": 1,
    }
    created = _create(api, body)
    assert created["status"] == "Pending" and created["template"]["experiment"] == "bowl"
    job = _wait(api, "bowl")
    assert job["status"] == "Completed", job
    trials = _trials(api, "bowl")
    assert [t["number"] for t in trials] == list(range(8))
    assert all(t["outcome"] == "complete" for t in trials)
    assert job["counts"]["complete"] == 8
    best = job["best"]
    assert best["value"] == max(t["value"] for t in trials)
    assert best["value"] > trials[0]["value"]
    # every trial is an ordinary job whose run carries the search's tags and chosen params
    job_row = api.get(f"/jobs/{best['job']}").json()
    assert job_row["hyperparameters"]["lr"] == best["params"]["lr"]
    assert job_row["hyperparameters"]["steps"] == 3  # the template's own
    run = api.get(f"/runs/{best['run_id']}").json()
    assert run["tags"]["naiad.tuning_job"] == "bowl"
    assert run["tags"]["naiad.trial"] == str(best["number"])
    # two at a time: some trial started before the one two places before it ended
    jobs = [api.get(f"/jobs/{t['job']}").json() for t in trials]
    assert any(b["started_at"] < a["ended_at"] for a, b in itertools.pairwise(jobs))
    ordered = api.get("/tuning-jobs/bowl/trials", params={"sort": "objective"}).json()
    assert ordered[0]["number"] == best["number"]
    assert set(api.get("/tuning-jobs/bowl/importances").json()) == {"lr", "width", "act"}


def test_pruning_stops_a_bad_trial_before_its_last_step(
    api: httpx.Client, live: LiveServer
) -> None:
    artifacts = HomeLayout(live.home).artifacts
    _curve(
        api,
        "prune",
        space=[{"name": "quality", "type": "categorical", "values": [1.0, 0.5, 0.2, 0.1]}],
        strategy="grid",
        early_stopping="asha",
        hyperparameters={"steps": 8, "step_seconds": 0.3},
    )
    job = _wait(api, "prune")
    assert job["status"] == "Completed", job
    trials = _trials(api, "prune")
    pruned = [t for t in trials if t["outcome"] == "pruned"]
    assert pruned, trials
    best = job["best"]["value"]
    for trial in pruned:
        assert trial["status"] == "Stopped"
        assert trial["last_step"] < 7, trial  # stopped before its last step
        assert trial["reason"].startswith("Pruned by early stopping (asha)")
        assert trial["value"] < best
        # the job and its run say why, and keep what the trial reached
        stopped = api.get(f"/jobs/{trial['job']}").json()
        assert stopped["status_reason"] == trial["reason"]
        run = api.get(f"/runs/{trial['run_id']}").json()
        assert run["status"] == "Stopped" and run["metrics"]["score"]["step"] == trial["last_step"]
        checkpoint = artifacts / "jobs" / trial["job"] / "checkpoints" / "last-step.txt"
        assert int(checkpoint.read_text()) >= trial["last_step"]
    assert job["best"]["params"]["quality"] == max(t["params"]["quality"] for t in trials)


def test_failed_trials_are_retried_then_counted_and_fail_the_search(api: httpx.Client) -> None:
    _curve(
        api,
        "retried",
        max_trials=2,
        template={"max_retries": 1},
        hyperparameters={"fail_first": True, "steps": 2, "step_seconds": 0.05},
    )
    job = _wait(api, "retried")
    assert job["status"] == "Completed" and job["counts"]["complete"] == 2
    for trial in _trials(api, "retried"):  # each failed once, then its retry completed
        assert api.get(f"/jobs/{trial['job']}").json()["attempt"] == 1

    _curve(api, "broken", max_trials=6, max_failed_trials=2, hyperparameters={"fail": True})
    job = _wait(api, "broken")
    assert job["status"] == "Failed"
    assert job["status_reason"].startswith("2 trials failed, which is max_failed_trials")
    assert job["counts"]["failed"] == 2 and len(_trials(api, "broken")) == 2
    answer = api.post("/tuning-jobs/broken/register", json={"model": "m"})
    assert answer.status_code == 409 and "no completed trial" in answer.text


def test_a_regex_objective_reads_the_log(api: httpx.Client) -> None:
    _curve(
        api,
        "regex",
        max_trials=2,
        objective={"metric": "logged", "direction": "minimize", "regex": r"score=([0-9.]+)"},
        hyperparameters={"steps": 3, "step_seconds": 0.05},
    )
    job = _wait(api, "regex")
    assert job["status"] == "Completed", job
    trials = _trials(api, "regex")
    assert job["best"]["value"] == min(t["value"] for t in trials)
    for trial in trials:
        assert trial["value"] == pytest.approx(round(trial["params"]["quality"], 6), abs=1e-6)


def test_stop_ends_the_running_trials_and_starts_no_more(api: httpx.Client) -> None:
    _curve(api, "stopped", max_trials=10, parallel=2, hyperparameters={"step_seconds": 2})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        running = [t for t in _trials(api, "stopped") if t["status"] == "Running"]
        if len(running) == 2:
            break
        time.sleep(0.2)
    assert api.post("/tuning-jobs/stopped/stop").json()["status"] in ("Running", "Stopping")
    job = _wait(api, "stopped", timeout=60)
    assert job["status"] == "Stopped" and job["status_reason"] == "Stop requested."
    trials = _trials(api, "stopped")
    assert len(trials) == 2
    assert {t["outcome"] for t in trials} == {"stopped"}
    assert {t["status"] for t in trials} == {"Stopped"}


def test_the_best_trials_model_registers_with_its_lineage(api: httpx.Client) -> None:
    model_script = (
        "import torch\n"
        "from naiad import runtime\n"
        "ctx = runtime.context()\n"
        "q = ctx.hyperparameters.get_float('quality')\n"
        "ctx.log_metrics({'score': q}, step=0)\n"
        "runtime.save_model(torch.nn.Linear(2, 1).eval(), torch.zeros(1, 2))\n"
    )
    _curve(
        api,
        "registered",
        max_trials=3,
        parallel=2,
        template={
            "entrypoint": "model.py",
            "source_uri": _source(api, {"model.py": model_script}),
        },
    )
    job = _wait(api, "registered")
    assert job["status"] == "Completed", job
    missing = api.post("/tuning-jobs/registered/register", json={"model": "m", "number": 9})
    assert missing.status_code == 404 and "no trial 9" in missing.json()["message"]
    answer = api.post("/tuning-jobs/registered/register", json={"model": "tuned"})
    assert answer.status_code == 201, answer.text
    lineage = answer.json()["lineage"]
    assert lineage["tuning_job"] == "registered" and lineage["trial"] == job["best"]["number"]
    assert lineage["job"] == job["best"]["job"] and lineage["run_id"] == job["best"]["run_id"]


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_a_sigkilled_server_resumes_the_search_without_losing_or_repeating_a_trial(
    tmp_path: Path, database: str, request: pytest.FixtureRequest
) -> None:
    env = {}
    if database == "postgres":
        url = request.getfixturevalue("postgres_url")
        postgres.truncate_all(url)
        env["NAIAD_DATABASE_URL"] = url
    server = LiveServer(home=tmp_path / "home", env=env)
    server.start()
    try:
        headers = {"Authorization": f"Bearer {server.token}"}
        with httpx.Client(base_url=f"{server.url}/api/v1", headers=headers, timeout=30) as api:
            _curve(
                api,
                "survivor",
                max_trials=6,
                parallel=2,
                strategy="tpe",
                hyperparameters={"steps": 4, "step_seconds": 0.25},
            )
            deadline = time.monotonic() + 30
            while len(_trials(api, "survivor")) < 3 and time.monotonic() < deadline:
                time.sleep(0.1)
        server.kill()
        time.sleep(1.5)  # trials go on (each has its own supervisor); some end meanwhile
        server.start()
        with httpx.Client(base_url=f"{server.url}/api/v1", headers=headers, timeout=30) as api:
            job = _wait(api, "survivor")
            trials = _trials(api, "survivor")
            jobs = [j for j in api.get("/jobs").json() if j["name"].startswith("survivor-")]
    finally:
        server.stop()
    assert job["status"] == "Completed", job
    assert [t["number"] for t in trials] == list(range(6))
    assert len(jobs) == 6 and {j["name"] for j in jobs} == {t["job"] for t in trials}
    assert all(t["outcome"] == "complete" for t in trials), trials
    points = [t["params"]["quality"] for t in trials]
    assert len(set(points)) == 6  # no point asked twice


def test_the_time_limit_ends_the_search(api: httpx.Client) -> None:
    _curve(api, "limited", max_trials=10, max_runtime_s=2, hyperparameters={"step_seconds": 2})
    job = _wait(api, "limited", timeout=60)
    assert job["status"] == "Stopped", job  # nothing completed within the limit
    assert job["status_reason"] == "Reached its time limit (max_runtime_s=2) after 1 trial."
    (trial,) = _trials(api, "limited")
    assert trial["outcome"] == "stopped" and trial["status"] == "Stopped"
    assert "limited is ending: Reached its time limit" in trial["reason"]
