"""Training jobs end to end: SDK and CLI against a live server running the local executor."""

import json
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path

import pytest

import naiad
from naiad.core.errors import Conflict, InvalidInput
from naiad.testing.live import LiveServer

SAGEMAKER_SCRIPT = """
import json, os
hps = json.load(open(os.path.join(os.environ["SM_INPUT_DIR"], "config", "hyperparameters.json")))
rows = open(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "data.csv")).read().splitlines()
with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w") as f:
    f.write(f"rows={len(rows)} lr={hps['lr']}")
print("trained on", len(rows), "rows")
"""

NATIVE_SCRIPT = """
import time
from naiad import runtime
ctx = runtime.context()
steps = ctx.hyperparameters.get_int("steps")
for step in range(steps):
    ctx.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    time.sleep(ctx.hyperparameters.get_float("sleep", 0.0))
print("done", steps)
"""


CLI = [sys.executable, "-m", "naiad.cli.main"]


def write(dir_: Path, name: str, code: str) -> Path:
    dir_.mkdir(parents=True, exist_ok=True)
    (dir_ / name).write_text(textwrap.dedent(code))
    return dir_


@pytest.fixture
def client(client_env: LiveServer) -> naiad.Client:
    return naiad.Client()


def test_sagemaker_script_runs_unchanged(client: naiad.Client, tmp_path: Path) -> None:
    source = write(tmp_path / "src", "train.py", SAGEMAKER_SCRIPT)
    data = tmp_path / "data"
    data.mkdir()
    (data / "data.csv").write_text("1,2\n3,4\n5,6\n")
    job = client.training_jobs.create(
        name="sm-plain",
        entrypoint="train.py",
        source_dir=source,
        hyperparameters={"lr": 0.01},
        inputs={"train": str(data)},
    )
    done = job.wait(timeout=120)
    assert done.status == "Completed", done.status_reason
    assert [t.status for t in done.transitions][:2] == ["Pending", "Starting"]
    assert "trained on 3 rows" in "".join(job.logs())
    model = client_env_home(client) / "artifacts/jobs/sm-plain/output/model.tar.gz"
    with tarfile.open(model) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("model.txt"))
        assert tar.extractfile(member).read() == b"rows=3 lr=0.01"  # type: ignore[union-attr]
    assert client.runs.get(done.run_id).status == "Completed"


def client_env_home(client: naiad.Client) -> Path:
    return Path(os.environ["NAIAD_HOME"])


def test_native_job_logs_metrics_to_its_run(client: naiad.Client, tmp_path: Path) -> None:
    source = write(tmp_path / "src", "train.py", NATIVE_SCRIPT)
    job = client.training_jobs.create(
        name="native", entrypoint="train.py", source_dir=source, hyperparameters={"steps": 50}
    )
    done = job.wait(timeout=120)
    assert done.status == "Completed", done.status_reason
    history = client.runs.metric_history(done.run_id, "loss")
    assert history.steps.tolist() == list(range(50))


def test_submit_errors_are_sentences(client: naiad.Client, tmp_path: Path) -> None:
    source = write(tmp_path / "src", "train.py", "print(1)")
    with pytest.raises(InvalidInput, match="not in the source directory"):
        client.training_jobs.create(name="bad-1", entrypoint="missing.py", source_dir=source)
    with pytest.raises(InvalidInput, match="use one of file://, s3://"):
        client.training_jobs.create(
            name="bad-2", entrypoint="train.py", source_dir=source, inputs={"x": "ftp://h/x"}
        )
    with pytest.raises(InvalidInput, match="slots"):
        client.training_jobs.create(
            name="bad-3", entrypoint="train.py", source_dir=source, processes_per_node=1000
        )
    client.training_jobs.create(name="dup", entrypoint="train.py", source_dir=source).wait(60)
    with pytest.raises(Conflict, match="already exists"):
        client.training_jobs.create(name="dup", entrypoint="train.py", source_dir=source)


def test_ctrl_c_detaches_and_stop_from_cli(
    client: naiad.Client, client_env: LiveServer, tmp_path: Path
) -> None:
    source = write(
        tmp_path / "src", "train.py", "import time\nprint('up', flush=True)\ntime.sleep(600)\n"
    )
    follow = subprocess.Popen(
        [*CLI, "train", "train.py", "--source", str(source), "--name", "sleepy", "--follow"],
        env=client_env.environ(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        jobs = {j.name: j for j in client.training_jobs.list()}
        if "sleepy" in jobs and jobs["sleepy"].status == "Running":
            break
        time.sleep(0.2)
    time.sleep(2)  # the live view is drawing
    follow.send_signal(signal.SIGINT)
    out, err = follow.communicate(timeout=30)
    assert follow.returncode == 0, err
    assert "Detached; sleepy keeps running" in out
    job = client.training_jobs.get("sleepy")
    assert job.status == "Running"
    out = subprocess.run(
        [sys.executable, "-m", "naiad.cli.main", "jobs", "stop", "sleepy"],
        env=client_env.environ(),
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    done = job.wait(timeout=60)
    assert done.status == "Stopped"
    assert "Stopping" in [t.status for t in done.transitions]


def test_job_survives_server_sigkill(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGKILL the server mid-job and keep it down until the job has ended: the job
    finishes, and after the restart its status and every metric are right."""
    server = LiveServer(home=tmp_path / "home", env={"NAIAD_FLUSH_TIMEOUT": "1"})
    server.start()
    monkeypatch.setenv("NAIAD_HOME", str(server.home))
    try:
        client = naiad.Client()
        source = write(tmp_path / "src", "train.py", NATIVE_SCRIPT)
        job = client.training_jobs.create(
            name="survivor",
            entrypoint="train.py",
            source_dir=source,
            hyperparameters={"steps": 60, "sleep": 0.05},
        )
        deadline = time.monotonic() + 60
        while job.status != "Running" and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        server.kill()
        state = server.home / "jobs" / "survivor" / "state.json"
        deadline = time.monotonic() + 60
        while '"succeeded"' not in (state.read_text() if state.exists() else ""):
            assert time.monotonic() < deadline, "the job did not finish without its server"
            time.sleep(0.2)
        server.start()
        done = job.wait(timeout=60)
        assert done.status == "Completed", done.status_reason
        history = client.runs.metric_history(done.run_id, "loss")
        assert history.steps.tolist() == list(range(60))
    finally:
        server.stop()


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "naiad.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_cli_train_follow_ls_show_logs(client_env: LiveServer, tmp_path: Path) -> None:
    env = client_env.environ()
    source = write(tmp_path / "src", "train.py", NATIVE_SCRIPT)
    out = cli(
        env,
        "train",
        "train.py",
        "--source",
        str(source),
        "--hp",
        "steps=5",
        "--name",
        "cli-job",
        "--follow",
    )
    assert out.returncode == 0, out.stderr
    assert "Submitted cli-job" in out.stdout and "Completed" in out.stdout
    listed = json.loads(cli(env, "jobs", "ls", "--json").stdout)
    job = next(j for j in listed if j["name"] == "cli-job")
    assert job["hyperparameters"] == {"steps": 5} and job["status"] == "Completed"
    shown = cli(env, "jobs", "show", "cli-job")
    assert shown.returncode == 0 and "Pending" in shown.stdout and "Running" in shown.stdout
    logs = cli(env, "jobs", "logs", "cli-job")
    assert "done 5" in logs.stdout


def test_cli_train_errors_are_one_sentence(client_env: LiveServer, tmp_path: Path) -> None:
    env = client_env.environ()
    source = write(tmp_path / "src", "train.py", "print(1)")
    for args, expected in (
        (("train", "nope.py", "--source", str(source)), "not in the source directory"),
        (("train", "train.py", "--source", str(tmp_path / "missing")), "does not exist"),
        (("train", "train.py", "--source", str(source), "--hp", "lr"), "NAME=VALUE"),
        (("jobs", "show", "no-such-job"), "No training job"),
    ):
        out = cli(env, *args)
        assert out.returncode == 1, args
        assert expected in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_source_is_snapshotted_at_submit(client: naiad.Client, tmp_path: Path) -> None:
    """Editing the source after submitting changes nothing for the queued job."""
    source = write(tmp_path / "src", "train.py", "print('version one')\n")
    write(tmp_path / "src", "other.py", "print('other')\n")
    job = client.training_jobs.create(name="snap", entrypoint="train.py", source_dir=source)
    (source / "train.py").write_text("print('version two')\n")
    done = job.wait(timeout=60)
    assert done.status == "Completed", done.status_reason
    text = "".join(job.logs())
    assert "version one" in text and "version two" not in text
