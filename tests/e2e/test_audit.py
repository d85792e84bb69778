"""The audit log: every write, by whom (the admin token, the console, a job's own token, an
access key, nobody), from where and with what answer; reads and data-plane traffic are not
in it; only the admin reads it."""

import json
import subprocess
import sys
from pathlib import Path

import boto3
import httpx

import naiad
from naiad.testing.live import LiveServer


def test_writes_are_recorded_with_their_actor_and_read_back_by_the_cli(
    live: LiveServer, tmp_path: Path
) -> None:
    admin = naiad.Client(url=live.url, token=live.token)
    admin.experiments.create("audited")
    admin.runs.search()  # a read sent as POST: not recorded
    source = tmp_path / "src"
    source.mkdir()
    (source / "t.py").write_text(
        "import naiad\nwith naiad.start_run() as run:\n"
        "    run.log_params({'a': 1})\n    run.log_metric('loss', 1.0, step=0)\n"
    )
    job = admin.training_jobs.create(name="audited-job", entrypoint="t.py", source_dir=source)
    assert job.wait(timeout=120).status == "Completed"
    s3 = boto3.client("s3", **admin.keys.boto3_kwargs())
    s3.create_bucket(Bucket="audited")
    s3.list_buckets()  # a read: not recorded
    wrong = httpx.post(f"{live.url}/login", data={"token": "guess"}, follow_redirects=False)
    assert wrong.status_code == 401

    shown = subprocess.run(
        [sys.executable, "-m", "naiad.cli.main", "audit", "--json", "--limit", "1000"],
        env=live.environ(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    events = json.loads(shown.stdout)
    seen = {(e["actor"], e["action"], e["path"], e["status"]) for e in events}
    assert ("admin", "POST", "/api/v1/experiments", 201) in seen
    assert ("admin", "POST", "/api/v1/jobs", 201) in seen
    assert ("job:audited-job", "POST", f"/api/v1/runs/{job.job.run_id}/params", 200) in seen
    admin_key = admin.keys.admin().access_key_id
    assert (f"key:{admin_key}", "PUT", "/audited", 200) in seen
    assert ("anonymous", "POST", "/login", 401) in seen
    assert all(e["client"] == "127.0.0.1" for e in events)
    paths = {e["path"] for e in events}
    assert "/api/v1/runs/search" not in paths and "/" not in paths  # reads
    assert not any(p.endswith("/metrics") for p in paths)  # metric batches
    assert [e["id"] for e in events] == sorted((e["id"] for e in events), reverse=True)

    only_job = admin.audit.list(actor="job:audited-job")
    assert only_job and {e.actor for e in only_job} == {"job:audited-job"}
    older = admin.audit.list(limit=2)
    assert admin.audit.list(limit=1, before=older[0].id)[0].id == older[1].id
