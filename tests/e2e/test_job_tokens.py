"""A job's processes hold their own token, not the admin's: they read, write their own run,
and nothing else, and the token is void once the job ends."""

import json
from pathlib import Path

import httpx
import pytest

import naiad
from naiad.testing.live import LiveServer

PROBE = """
import json, os
import httpx
import naiad
from naiad.core.errors import NaiadError

token = os.environ["NAIAD_TOKEN"]
client = naiad.Client()
run_id = os.environ["NAIAD_RUN_ID"]
seen = {"token": token}

def attempt(name, call):
    try:
        call()
        seen[name] = "ok"
    except NaiadError as exc:
        seen[name] = f"{exc.status_code} {exc.message}"

with naiad.start_run() as run:  # the job's run
    run.log_metric("loss", 0.5, step=0)
    run.log_params({"probe": 1})
attempt("own run", lambda: client.runs.set_tags(run_id, {"probed": "yes"}))
attempt("read runs", lambda: client.runs.search())
attempt("read other run", lambda: client.runs.get(os.environ["OTHER_RUN"]))
attempt("write other run", lambda: client.runs.set_tags(os.environ["OTHER_RUN"], {"x": "y"}))
attempt("delete other run", lambda: client.runs.delete(os.environ["OTHER_RUN"]))
attempt("create experiment", lambda: client.experiments.create("from-a-job"))
attempt("list keys", lambda: client.keys.list())
attempt("credentials", lambda: client.connections.credentials("warehouse"))
attempt("submit job", lambda: client.training_jobs.create(name="spawned", entrypoint="x.py"))
with open(os.path.join(os.environ["SM_MODEL_DIR"], "seen.json"), "w") as f:
    json.dump(seen, f)
print("SEEN " + json.dumps(seen), flush=True)
"""


def test_a_job_token_reads_and_writes_only_its_own_run(live: LiveServer, tmp_path: Path) -> None:
    admin = naiad.Client(url=live.url, token=live.token)
    other = admin.runs.create(experiment="others", name="not-the-jobs")
    admin.connections.create("warehouse", kind="sql", url="postgresql://u:secret@h/db")
    source = tmp_path / "src"
    source.mkdir()
    (source / "probe.py").write_text(PROBE)
    job = admin.training_jobs.create(
        name="probe",
        entrypoint="probe.py",
        source_dir=source,
        environment={"OTHER_RUN": other.id},
    ).wait(timeout=120)
    assert job.status == "Completed", job.status_reason
    log = "".join(admin.training_jobs.get("probe").logs())
    seen = json.loads(log.split("SEEN ", 1)[1].splitlines()[0])

    assert seen["token"] != live.token and seen["token"].startswith("nj1.")
    assert seen["own run"] == "ok" and seen["read runs"] == "ok" and seen["read other run"] == "ok"
    for refused in ("write other run", "delete other run", "create experiment", "submit job"):
        assert seen[refused].startswith(
            f"403 The token of job 'probe' may read, and write only its own run ({job.run_id})"
        ), seen[refused]
    assert seen["list keys"].startswith("403 ") and "access keys" in seen["list keys"]
    assert (
        seen["credentials"].startswith("403 ")
        and "'warehouse' is not one of them" in seen["credentials"]
    )
    run = admin.runs.get(job.run_id)
    assert run.tags["probed"] == "yes" and run.params["probe"] == 1
    assert "x" not in admin.runs.get(other.id).tags
    assert [e.name for e in admin.experiments.list() if e.name == "from-a-job"] == []

    # once the job has ended, its token opens nothing, not even a read
    ended = httpx.get(
        f"{live.url}/api/v1/runs/{job.run_id}",
        headers={"authorization": f"Bearer {seen['token']}"},
    )
    assert ended.status_code == 401
    assert "job 'probe', which has ended (Completed)" in ended.json()["message"]
    forged = seen["token"][:-4] + ("AAAA" if not seen["token"].endswith("AAAA") else "BBBB")
    refused = httpx.get(f"{live.url}/api/v1/runs", headers={"authorization": f"Bearer {forged}"})
    assert refused.status_code == 401 and "not valid or has expired" in refused.json()["message"]


@pytest.mark.parametrize("path", ["/notebooks/any/lab", "/api/v1/keys/admin"])
def test_a_job_token_never_opens_a_notebook_or_the_admin_key(live: LiveServer, path: str) -> None:
    from naiad.core import job_tokens

    key = job_tokens.signing_key(live.token)
    admin = naiad.Client(url=live.url, token=live.token)
    run = admin.runs.create(experiment="e")
    token = job_tokens.mint(key, "nojob", run.id, 2**40)
    answer = httpx.get(f"{live.url}{path}", headers={"authorization": f"Bearer {token}"})
    assert answer.status_code in (401, 403), answer.text
