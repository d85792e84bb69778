"""A notebook run as an ordinary training job: parameters injected into its tagged cell,
its metrics on the run, the executed notebook (and its HTML, sandboxed) among the run's
artifacts, and a failing cell named as the job's reason."""

import json
import subprocess
import sys
from pathlib import Path

import httpx

import naiad
from naiad.testing.live import LiveServer

NOTEBOOK = Path(__file__).parent / "jobs" / "notebook"


def test_a_notebook_with_two_parameter_values_gives_two_runs(
    client_env: LiveServer, tmp_path: Path
) -> None:
    client = naiad.Client()
    for lr in (0.1, 0.3):
        ran = subprocess.run(
            [
                sys.executable,
                "-m",
                "naiad.cli.main",
                "train",
                "score.ipynb",
                "--source",
                str(NOTEBOOK),
                "--name",
                f"nb-{int(lr * 10)}",
                "--hp",
                f"lr={lr}",
                "--follow",
            ],
            capture_output=True,
            text=True,
            timeout=180,
            env=client_env.environ(),
        )
        assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    runs = {}
    for name in ("nb-1", "nb-3"):
        job = client.training_jobs.get(name).job
        runs[name] = client.runs.get(job.run_id)
    assert runs["nb-1"].params["lr"] == 0.1 and runs["nb-3"].params["lr"] == 0.3
    assert runs["nb-1"].metrics["score"].value == 0.2
    assert abs(runs["nb-3"].metrics["score"].value - 0.6) < 1e-9

    log = "".join(client.training_jobs.get("nb-3").logs())
    assert "score: 0.6" in log and "parameter(s) injected after the cell tagged" in log
    run_id = runs["nb-3"].id
    paths = {a.path for a in client.runs.list_artifacts(run_id, recursive=True)}
    assert {"notebook/score.ipynb", "notebook/score.html"} <= paths
    copy = client.runs.download_artifact(run_id, "notebook/score.ipynb", tmp_path / "x.ipynb")
    executed = json.loads(copy.read_text())
    injected = executed["cells"][2]
    assert injected["metadata"]["tags"] == ["injected-parameters"]
    assert "lr = 0.3" in "".join(injected["source"])
    texts = [o.get("text", "") for c in executed["cells"] for o in c.get("outputs", [])]
    outputs = "".join(t if isinstance(t, str) else "".join(t) for t in texts)
    assert "score: 0.6" in outputs

    url = f"{client_env.url}/api/v1/runs/{run_id}/artifacts/notebook/score.html"
    auth = {"authorization": f"Bearer {client_env.token}"}
    viewed = httpx.get(url, params={"view": "1"}, headers=auth)
    assert viewed.status_code == 200 and "score: 0.6" in viewed.text
    assert viewed.headers["content-security-policy"].startswith("sandbox;")
    assert "content-disposition" not in viewed.headers
    downloaded = httpx.get(url, headers=auth)  # without view: a download, never a page
    assert downloaded.headers["content-disposition"].startswith("attachment")


def test_a_failing_cell_fails_the_job_with_the_cell_named(client_env: LiveServer) -> None:
    client = naiad.Client()
    job = client.training_jobs.create(
        name="nb-fails",
        entrypoint="score.ipynb",
        source_dir=NOTEBOOK,
        hyperparameters={"fail": True},
    )
    ended = job.wait(timeout=180)
    assert ended.status == "Failed"
    assert ended.status_reason == (
        "Cell 4 of score.ipynb failed: ValueError: asked to fail (in: if fail:)"
    )
    run = client.runs.get(ended.run_id)
    assert run.metrics["score"].value == 1.0  # the cells before it ran and logged
    paths = {a.path for a in client.runs.list_artifacts(ended.run_id, recursive=True)}
    assert "notebook/score.ipynb" in paths  # the executed copy, error and all


def test_a_notebook_is_the_script_of_a_tuning_search(client_env: LiveServer) -> None:
    client = naiad.Client()
    search = client.tuning_jobs.create(
        "nb-search",
        "score.ipynb",
        NOTEBOOK,
        space={"lr": "cat:0.1,0.3"},
        objective="score:max",
        strategy="grid",
        max_trials=2,
    )
    done = search.wait(timeout=300)
    assert done.status == "Completed", done.status_reason
    assert done.best is not None and done.best.value is not None
    assert abs(done.best.value - 0.6) < 1e-9  # lr=0.3, injected into the notebook
