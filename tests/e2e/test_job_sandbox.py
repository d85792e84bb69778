"""NAIAD_JOB_SANDBOX: a local job's processes run where the Naiad home is out of reach (its
token, database and other jobs' files), yet read their inputs, write their outputs,
log to their run and stop gracefully as before."""

import shutil
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import naiad
from naiad.core.errors import InvalidInput
from naiad.testing.live import LiveServer
from tests.conftest import need

PROBE = """
import os, signal, sys, time
from pathlib import Path
import naiad

home = Path(os.environ["HOME_UNDER_TEST"])
for secret in ("admin_token", "naiad.db"):
    print(secret, "readable" if (home / secret).exists() else "hidden")
print("home holds", sorted(p.name for p in home.iterdir()))
print("pids seen", len([p for p in os.listdir("/proc") if p.isdigit()]))
print("input", (Path(os.environ["SM_CHANNEL_TRAIN"]) / "rows.csv").read_text().strip())
(Path(os.environ["SM_MODEL_DIR"]) / "weights.txt").write_text("w")
with naiad.start_run() as run:
    run.log_metric("seen", 1.0, step=0)
if os.environ.get("WAIT"):
    signal.signal(signal.SIGTERM, lambda *_: (print("got SIGTERM", flush=True), sys.exit(0)))
    print("waiting", flush=True)
    time.sleep(120)
"""


@pytest.fixture(scope="module")
def sandboxed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    need(shutil.which("bwrap") is not None, "bubblewrap (apt-get install bubblewrap)")
    server = LiveServer(
        home=tmp_path_factory.mktemp("sandbox") / "home", env={"NAIAD_JOB_SANDBOX": "on"}
    )
    server.start()
    yield server
    server.stop()


def test_a_sandboxed_job_works_but_cannot_read_the_home(
    sandboxed: LiveServer, tmp_path: Path
) -> None:
    client = naiad.Client(url=sandboxed.url, token=sandboxed.token)
    data = sandboxed.home / "artifacts" / "datasets" / "rows"  # in the home: linked, read-only
    data.mkdir(parents=True)
    (data / "rows.csv").write_text("1,2,3\n")
    source = tmp_path / "src"
    source.mkdir()
    (source / "probe.py").write_text(textwrap.dedent(PROBE))
    env = {"HOME_UNDER_TEST": str(sandboxed.home)}
    job = client.training_jobs.create(
        name="probe",
        entrypoint="probe.py",
        source_dir=source,
        inputs={"train": data.as_uri()},
        environment=env,
    )
    done = job.wait(timeout=120)
    said = "".join(job.logs())
    assert done.status == "Completed", said
    assert "admin_token hidden" in said and "naiad.db hidden" in said
    assert "home holds ['artifacts', 'jobs']" in said  # the job's own folder, its input's
    assert int(said.split("pids seen ")[1].split()[0]) < 10  # a PID namespace of its own
    assert "input 1,2,3" in said
    assert client.runs.get(done.run_id).metrics["seen"].value == 1.0
    with pytest.raises(InvalidInput, match=r"it has: weights\.txt"):  # its model dir came back
        client.models.register("sandboxed", job="probe")

    waiting = client.training_jobs.create(
        name="probe-stop",
        entrypoint="probe.py",
        source_dir=source,
        inputs={"train": data.as_uri()},
        environment={**env, "WAIT": "1"},
    )
    for _ in range(600):
        if "waiting" in "".join(waiting.logs()):
            break
        time.sleep(0.1)
    client.training_jobs.stop("probe-stop")
    assert waiting.wait(timeout=60).status == "Stopped"
    assert "got SIGTERM" in "".join(waiting.logs())  # a graceful stop reaches the script
