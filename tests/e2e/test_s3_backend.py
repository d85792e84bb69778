"""The server on an S3-compatible artifact store (moto on 127.0.0.1): run artifacts and a
job's source and outputs live in the bucket."""

from collections.abc import Iterator
from pathlib import Path

import pytest

import naiad
from naiad.testing.live import LiveServer
from naiad.testing.s3 import S3Server

pytestmark = pytest.mark.s3


@pytest.fixture
def s3_live(tmp_path: Path, s3_server: S3Server) -> Iterator[tuple[LiveServer, str]]:
    uri = s3_server.fresh_uri()
    env = {"NAIAD_ARTIFACT_URI": uri, "NAIAD_S3_ENDPOINT_URL": s3_server.endpoint_url}
    server = LiveServer(home=tmp_path / "home", env=env)
    server.start()
    yield server, uri
    server.stop()


def keys(s3: S3Server, uri: str) -> list[str]:
    prefix = uri.removeprefix(f"s3://{s3.bucket}/")
    listed = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix=prefix)
    return [o["Key"][len(prefix) + 1 :] for o in listed.get("Contents", [])]


def test_artifacts_and_jobs_on_s3(
    s3_live: tuple[LiveServer, str],
    s3_server: S3Server,
    tmp_path: Path,
) -> None:
    server, uri = s3_live
    client = naiad.Client(url=server.url, token=server.token)
    with naiad.start_run(experiment="s3", client=client) as run:
        (tmp_path / "notes.txt").write_text("stored in a bucket")
        run.log_artifact(tmp_path / "notes.txt")
    assert client.runs.get(run.id).artifact_uri.startswith(uri)
    assert f"runs/{run.id}/artifacts/notes.txt" in keys(s3_server, uri)
    got = client.runs.download_artifact(run.id, "notes.txt", tmp_path / "back.txt")
    assert got.read_text() == "stored in a bucket"

    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text(
        "import os\nopen(os.path.join(os.environ['SM_MODEL_DIR'], 'm.txt'), 'w').write('ok')\n"
    )
    job = client.training_jobs.create(name="on-s3", entrypoint="train.py", source_dir=source)
    done = job.wait(timeout=120)
    assert done.status == "Completed", done.status_reason
    stored = keys(s3_server, uri)
    assert "jobs/on-s3/output/model.tar.gz" in stored
    assert any(k.startswith("sources/") for k in stored)
