"""The object store stops answering (the test store stopped) during an upload and during a
job's model write: each gets a clear error after retries with back-off, no half-written
artifact is ever visible, and once the store is back everything works again."""

import time
from pathlib import Path

import pytest

import naiad
from naiad.core.errors import ServerError
from naiad.testing.live import LiveServer
from naiad.testing.s3 import S3Server, StoppableS3

pytestmark = [pytest.mark.faults, pytest.mark.s3, pytest.mark.slow]

SLOW_JOB = """
import os, time
open(os.path.join(os.environ["SM_MODEL_DIR"], "weights.bin"), "wb").write(os.urandom(1 << 20))
print("trained", flush=True)
time.sleep(3)  # the store goes away meanwhile
"""


def test_an_unreachable_store_fails_clearly_keeps_no_part_and_recovers(
    tmp_path: Path,
    s3_server: S3Server,  # for its fake credentials in this process
) -> None:
    store = StoppableS3()
    store.start()
    endpoint = store.endpoint_url
    checked = S3Server(endpoint_url=endpoint, bucket="outage")
    checked.create_bucket("outage")
    server = LiveServer(
        home=tmp_path / "home",
        env={"NAIAD_ARTIFACT_URI": "s3://outage/naiad", "NAIAD_S3_ENDPOINT_URL": endpoint},
    )
    server.start()
    try:
        client = naiad.Client(url=server.url, token=server.token)
        run = client.runs.create(experiment="outage")
        kept = tmp_path / "kept.bin"
        kept.write_bytes(b"k" * 1000)
        client.runs.upload_artifact(run.id, kept, "kept.bin")
        big = tmp_path / "big.bin"
        big.write_bytes(b"b" * (20 << 20))  # multipart

        store.stop()
        started = time.monotonic()
        with pytest.raises(ServerError) as refused:
            client.runs.upload_artifact(run.id, big, "big.bin")
        assert refused.value.status_code == 503  # type: ignore[attr-defined]
        assert "The artifact store (s3://outage/naiad" in refused.value.message
        assert "cannot be reached right now" in refused.value.message
        assert "nothing was stored there" in refused.value.message
        assert time.monotonic() - started < 30
        with pytest.raises(ServerError):
            client.runs.list_artifacts(run.id)
        store.start()
        assert [a.path for a in client.runs.list_artifacts(run.id)] == ["kept.bin"]
        client.runs.upload_artifact(run.id, big, "big.bin")
        assert client.runs.download_artifact(run.id, "big.bin", tmp_path / "b").stat().st_size == (
            20 << 20
        )

        source = tmp_path / "src"
        source.mkdir()
        (source / "train.py").write_text(SLOW_JOB)
        job = client.training_jobs.create(
            name="writes-late", entrypoint="train.py", source_dir=source
        )
        deadline = time.monotonic() + 60
        while "trained" not in "".join(job.logs()):
            assert time.monotonic() < deadline, job.refresh()
            time.sleep(0.1)
        store.stop()
        done = job.wait(timeout=120)
        assert done.status == "Failed"
        assert done.status_reason is not None
        assert done.status_reason.startswith("The job succeeded but uploading its outputs failed")
        assert "cannot be reached right now" in done.status_reason
        store.start()
        keys = checked.client().list_objects_v2(Bucket="outage", Prefix="naiad/jobs/writes-late/")
        names = [o["Key"] for o in keys.get("Contents", [])]
        assert not any(n.endswith("model.tar.gz") for n in names), names  # no part shows
    finally:
        server.stop()
        store.stop()
