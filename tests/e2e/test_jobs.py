"""Training jobs end to end: SDK and CLI against a live server running the local executor."""

import io
import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path

import httpx
import pytest

import naiad
from naiad.core.errors import Conflict, InvalidInput, NotFound
from naiad.sdk.jobs import LargeSourceWarning
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


def test_cli_train_numbers_out_of_range_are_sentences(
    client_env: LiveServer, tmp_path: Path
) -> None:
    """Numbers too big for the wire, and more nodes than the executor runs, are refused
    before anything runs."""
    env = client_env.environ()
    source = write(tmp_path / "src", "train.py", "print(1)")
    base = ("train", "train.py", "--source", str(source), "--name", "out-of-range")
    for args, expected in (
        (("--priority", "-100000000000000000000"), "priority: Input should be greater than"),
        (("--priority", "1001"), "priority: Input should be less than or equal to 1000"),
        (("--max-runtime", "100000000000000000000000"), "max_runtime_s: Input should be less"),
        (("--nodes", "1000"), "asks for 1000 nodes but this server's executor runs a job on"),
    ):
        out = cli(env, *base, *args)
        assert out.returncode == 1, args
        assert "Traceback" not in out.stderr + out.stdout
        (line,) = out.stderr.strip().splitlines()
        assert line.startswith("Error: ") and expected in line, line
    assert "out-of-range" not in cli(env, "jobs", "ls").stdout


def test_cli_hp_nan_reaches_the_script_as_nan(client_env: LiveServer, tmp_path: Path) -> None:
    """`--hp lr=nan` stays the string "nan" (JSON has no NaN), which a SageMaker script's
    float() reads back; it never becomes null."""
    script = """
    import json, os
    path = os.path.join(os.environ["SM_INPUT_DIR"], "config", "hyperparameters.json")
    hps = json.load(open(path))
    print("lr", repr(hps["lr"]), float(hps["lr"]), "top", float(hps["top"]))
    """
    env = client_env.environ()
    source = write(tmp_path / "src", "train.py", script)
    out = cli(
        env,
        "train",
        "train.py",
        "--source",
        str(source),
        "--name",
        "hp-nan",
        "--hp",
        "lr=nan",
        "--hp",
        "top=-inf",
        "--follow",
    )
    assert out.returncode == 0, out.stderr
    job = json.loads(cli(env, "jobs", "show", "hp-nan", "--json").stdout)
    assert job["hyperparameters"] == {"lr": "nan", "top": "-inf"}
    assert "lr 'nan' nan top -inf" in cli(env, "jobs", "logs", "hp-nan").stdout


def test_symlink_in_source_is_refused_before_upload(client_env: LiveServer, tmp_path: Path) -> None:
    env = client_env.environ()
    source = write(tmp_path / "src", "train.py", "print(1)")
    (source / "data").mkdir()
    (source / "data" / "train.csv").symlink_to(tmp_path / "elsewhere.csv")
    sources = client_env.home / "artifacts" / "sources"
    before = sorted(sources.iterdir()) if sources.exists() else []
    out = cli(env, "train", "train.py", "--source", str(source), "--name", "linked")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "symlink, data/train.csv -> " in out.stderr and ".naiadignore" in out.stderr
    assert (sorted(sources.iterdir()) if sources.exists() else []) == before  # nothing sent
    assert "linked" not in cli(env, "jobs", "ls").stdout
    # Listed in .naiadignore, the link is left out and the job goes.
    (source / ".naiadignore").write_text("data/train.csv\n")
    ok = cli(env, "train", "train.py", "--source", str(source), "--name", "linked", "--follow")
    assert ok.returncode == 0, ok.stderr


def test_a_snapshot_with_a_link_is_refused_at_submit(
    client: naiad.Client, client_env: LiveServer
) -> None:
    """A snapshot made without the SDK is checked too: a link member gets a sentence."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        body = b"print(1)\n"
        info = tarfile.TarInfo("train.py")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
        link = tarfile.TarInfo("data")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc"
        tar.addfile(link)
    headers = {"authorization": f"Bearer {client_env.token}"}
    api = f"{client_env.url}/api/v1"
    uploaded = httpx.put(f"{api}/sources", content=buf.getvalue(), headers=headers).json()
    job = {"name": "tar-link", "entrypoint": "train.py", "source_uri": uploaded["source_uri"]}
    answer = httpx.post(f"{api}/jobs", json=job, headers=headers)
    assert answer.status_code == 400
    assert "has a link, data -> /etc" in answer.json()["message"]


def test_sdk_warns_about_a_large_source(client: naiad.Client, tmp_path: Path) -> None:
    source = write(tmp_path / "src", "train.py", "print(1)\n")
    with open(source / "weights.bin", "wb") as f:
        f.truncate(55_000_000)
    with pytest.warns(LargeSourceWarning, match=r"the largest: weights.bin \(55.0 MB\)"):
        client.training_jobs.upload_source(source)


def test_naiadignore_and_default_skips_shape_the_snapshot(
    client: naiad.Client, tmp_path: Path
) -> None:
    script = """
    import os
    here = os.path.dirname(os.path.abspath(__file__))
    for d, dirs, files in os.walk(here):
        for f in files:
            print("FILE", os.path.relpath(os.path.join(d, f), here))
    """
    source = write(tmp_path / "src", "train.py", script)
    write(source / "pkg", "model.py", "X = 1\n")
    write(source / "pkg" / "__pycache__", "model.cpython-311.pyc", "junk")
    write(source / ".git", "HEAD", "ref: refs/heads/main\n")
    write(source / "env", "pyvenv.cfg", "home = /usr/bin\n")  # a virtualenv by another name
    write(source / "data", "big.csv", "1,2\n")
    write(source / "runs", "a.ckpt", "weights")
    write(source / "runs", "keep.ckpt", "weights")
    (source / ".naiadignore").write_text("# data is an input channel\ndata/\n*.ckpt\n!keep.ckpt\n")
    job = client.training_jobs.create(name="ignored", entrypoint="train.py", source_dir=source)
    done = job.wait(timeout=120)
    assert done.status == "Completed", done.status_reason
    files = sorted(
        line.split(" ", 1)[1] for line in "".join(job.logs()).splitlines() if line[:5] == "FILE "
    )
    assert files == [".naiadignore", "pkg/model.py", "runs/keep.ckpt", "train.py"]


def test_large_source_warns_and_shows_upload_progress(
    client_env: LiveServer, tmp_path: Path
) -> None:
    """Over 50 MB the CLI names what takes the room; on a terminal it draws the upload."""
    source = write(tmp_path / "src", "train.py", "print('ok')\n")
    (source / "data").mkdir()
    with open(source / "data" / "frames.bin", "wb") as f:
        f.truncate(60_000_000)  # zeros: quick to pack, still 60 MB of source
    env = {**client_env.environ(), "TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1"}
    out = cli(env, "train", "train.py", "--source", str(source), "--name", "large-src")
    assert out.returncode == 0, out.stderr
    assert "Submitted" in out.stdout
    err = " ".join(re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.stderr).split())  # no ANSI
    assert "Warning: The source directory" in err and "is 60.0 MB" in err
    assert "the largest: data/ (60.0 MB)" in err and ".naiadignore" in err
    assert "Packing source" in err and "Uploading source" in err
    quiet = cli(
        client_env.environ(),
        "train",
        "train.py",
        "--source",
        str(source / "data"),
        "--name",
        "large-src-2",
    )
    assert "Uploading" not in quiet.stderr  # no bars when nobody watches a terminal


PRINTING_SCRIPT = """
import os
rank = int(os.environ.get("RANK", "0"))
for step in range(6):
    print(f"epoch {step} loss: {0.5 / (step + 1):.4f} rank={rank}", flush=True)
print("[naiad] loss: 9.0")  # looks like the platform's lines: never a metric
print("final loss: nan")
"""


def test_metric_definitions_turn_printed_lines_into_metrics(
    client_env: LiveServer, client: naiad.Client, tmp_path: Path
) -> None:
    env = client_env.environ()
    source = write(tmp_path / "src", "train.py", PRINTING_SCRIPT)
    bad = cli(
        env,
        "train",
        "train.py",
        "--source",
        str(source),
        "--metric-definition",
        "loss=loss: [0-9.]+",
    )
    assert bad.returncode == 1 and "needs exactly one" in bad.stderr
    out = cli(
        env,
        "train",
        "train.py",
        "--source",
        str(source),
        "--name",
        "printed",
        "--metric-definition",
        "loss=loss: ([0-9.]+|nan)",
        "--metric-definition",
        "rank=rank=(\\d+)",
        "--follow",
    )
    assert out.returncode == 0, out.stderr
    job = client.training_jobs.get("printed").job
    assert [(d.name, d.regex) for d in job.metric_definitions] == [
        ("loss", "loss: ([0-9.]+|nan)"),
        ("rank", "rank=(\\d+)"),
    ]
    loss = client.runs.metric_history(job.run_id, "loss")
    assert loss.steps.tolist() == list(range(7))
    values = loss.values.tolist()
    assert values[:6] == pytest.approx([0.5 / (s + 1) for s in range(6)], abs=1e-4)
    assert values[6] != values[6]  # NaN stays NaN
    shown = cli(env, "jobs", "show", "printed").stdout
    assert "loss=loss: ([0-9.]+|nan)" in shown


def test_metric_definitions_read_rank_zero_under_torchrun(
    client: naiad.Client, tmp_path: Path
) -> None:
    """SageMaker-shaped definitions from the SDK; with two processes only rank 0's lines."""
    source = write(tmp_path / "src", "train.py", PRINTING_SCRIPT)
    job = client.training_jobs.create(
        name="printed-2",
        entrypoint="train.py",
        source_dir=source,
        processes_per_node=2,
        metric_definitions=[{"Name": "rank", "Regex": r"rank=(\d+)"}],
    )
    done = job.wait(timeout=180)
    assert done.status == "Completed", done.status_reason
    rank = client.runs.metric_history(done.run_id, "rank")
    assert rank.steps.tolist() == list(range(6)) and set(rank.values.tolist()) == {0.0}


def test_rerun_queues_the_same_request_under_the_next_free_name(
    client_env: LiveServer, client: naiad.Client, tmp_path: Path
) -> None:
    """A rerun (a retry, or the same training again) takes the source snapshot, command and
    hyperparameters as they were submitted, whatever the folder holds now."""
    source = write(tmp_path / "src", "train.py", "import sys\nprint('first', sys.argv[1:])\n")
    first = client.training_jobs.create(
        name="again", entrypoint="train.py", source_dir=source, hyperparameters={"lr": 0.5}
    )
    assert first.wait(timeout=60).status == "Completed"
    (source / "train.py").write_text("print('edited')\n")

    second = client.training_jobs.rerun("again")
    assert second.job.name == "again-r2"
    assert second.job.hyperparameters == {"lr": 0.5}
    assert second.job.source_uri == first.job.source_uri
    assert second.wait(timeout=60).status == "Completed"
    assert "first" in "".join(second.logs())

    shown = subprocess.run(
        [sys.executable, "-m", "naiad.cli.main", "jobs", "rerun", "again-r2"],
        env=client_env.environ(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "Queued again-r3, a rerun of again-r2" in shown.stdout
    client.training_jobs.get("again-r3").wait(timeout=60)
    with pytest.raises(Conflict, match="already exists"):
        client.training_jobs.rerun("again", new_name="again-r2")
    with pytest.raises(NotFound):
        client.training_jobs.rerun("never-was")
