"""The local executor runs real jobs: SageMaker scripts, torchrun DDP, stops, limits, retries.

No server: each job gets a tmp ``file://`` artifact store holding its source snapshot,
and the test polls the executor as the server's controller would.
"""

import dataclasses
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from naiad.executors.base import ExecState, LaunchSpec
from naiad.executors.local import LocalExecutor
from naiad.executors.supervisor.workdir import write_spec
from naiad.store.artifacts import ArtifactStore, open_artifact_store
from naiad.testing.jobs import launch_spec, wait_terminal
from naiad.testing.s3 import S3Server, s3_server  # noqa: F401

Job = Callable[..., LaunchSpec]


def make_job(
    tmp_path: Path, store: ArtifactStore, script: str, name: str = "job", **fields: Any
) -> LaunchSpec:
    """A LaunchSpec for a one-file job whose source snapshot is put in ``store``."""
    return launch_spec(tmp_path, store, {"train.py": script}, name, **fields)


@pytest.fixture
def job(tmp_path: Path) -> Job:
    """Jobs whose artifacts live in a tmp file:// store."""
    store = open_artifact_store((tmp_path / "artifacts").as_uri())
    return lambda script, name="job", **fields: make_job(tmp_path, store, script, name, **fields)


def wait(executor: LocalExecutor, spec: LaunchSpec, timeout: float = 30.0) -> ExecState:
    return wait_terminal(executor, spec, timeout)


def wait_for_file(path: Path, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().endswith("\n"):
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path} was not written within {timeout}s")


def archive(spec: LaunchSpec, name: str) -> dict[str, bytes]:
    """The members of ``<output_uri>/<name>`` in the job's store."""
    store = open_artifact_store(spec.artifact_root, s3_endpoint_url=spec.s3_endpoint_url)
    data = store.get_bytes(f"{spec.output_uri}/{name}")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


SAGEMAKER_SCRIPT = """
    import argparse, json, os

    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--optimizer")
    args = parser.parse_args()

    train = os.environ["SM_CHANNEL_TRAIN"]
    rows = open(os.path.join(train, "data.csv")).read().split()
    with open("/".join([os.environ["SM_INPUT_CONFIG_DIR"], "hyperparameters.json"])) as f:
        on_disk = json.load(f)
    hps = json.loads(os.environ["SM_HPS"])
    report = {
        "rows": len(rows),
        "args": [args.lr, args.epochs, args.optimizer],
        "file": on_disk,
        "hps": hps,
        "channels": json.loads(os.environ["SM_CHANNELS"]),
        "hosts": json.loads(os.environ["SM_HOSTS"]),
        "host": os.environ["SM_CURRENT_HOST"],
        "hp_env": os.environ["SM_HP_LR"],
        "user_args": json.loads(os.environ["SM_USER_ARGS"]),
        "naiad": [os.environ["NAIAD_JOB_NAME"], os.environ["NAIAD_RUN_ID"]],
    }
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.json"), "w") as f:
        json.dump(report, f)
    with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "extra.txt"), "w") as f:
        f.write("side output")
    print("trained on", len(rows), "rows")
"""


def test_plain_sagemaker_script_succeeds(job: Job, tmp_path: Path) -> None:
    data = tmp_path / "train-data"
    data.mkdir()
    (data / "data.csv").write_text("1,2\n3,4\n5,6\n")
    spec = job(
        SAGEMAKER_SCRIPT,
        name="plain",
        hyperparameters={"lr": 0.001, "epochs": 20, "optimizer": "adam"},
        inputs={"train": data.as_uri()},
    )
    executor = LocalExecutor()
    executor.submit(spec)
    executor.submit(spec)  # idempotent: one supervisor, one run
    state = wait(executor, spec)
    assert state.phase == "succeeded", state.reason
    assert state.exit_code == 0 and state.attempt == 0 and state.started_at is not None

    report = json.loads(archive(spec, "model.tar.gz")["model.json"])
    assert report["rows"] == 3
    assert report["args"] == [0.001, 20, "adam"]
    assert report["file"] == {"lr": "0.001", "epochs": "20", "optimizer": "adam"}
    assert report["hps"] == {"lr": 0.001, "epochs": 20, "optimizer": "adam"}
    assert report["channels"] == ["train"] and report["hosts"] == ["algo-1"]
    assert report["host"] == "algo-1" and report["hp_env"] == "0.001"
    assert report["user_args"] == ["--epochs", "20", "--lr", "0.001", "--optimizer", "adam"]
    assert report["naiad"] == ["plain", "run-plain"]
    assert archive(spec, "output.tar.gz") == {"extra.txt": b"side output"}

    log = (spec.work_dir / "logs" / "job.log").read_text()
    assert "staging channel train: 1 file, 12 B" in log and "trained on 3 rows" in log
    logs = open_artifact_store(spec.artifact_root).list("jobs/plain/logs", recursive=True)
    assert "jobs/plain/logs/job.log" in [info.path for info in logs]
    assert log.count("attempt 0: starting") == 1


@pytest.mark.s3
def test_code_data_and_outputs_on_s3(tmp_path: Path, s3_server: S3Server) -> None:  # noqa: F811
    """The same script with its snapshot, its channel and its outputs in an S3 bucket."""
    endpoint = s3_server.endpoint_url
    store = open_artifact_store(s3_server.fresh_uri(), s3_endpoint_url=endpoint)
    data = open_artifact_store(f"s3://{s3_server.create_bucket()}", s3_endpoint_url=endpoint)
    data.put_bytes("digits/train/data.csv", b"1,2\n3,4\n")
    data.put_bytes("digits/train/more/readme.txt", b"x")
    spec = make_job(
        tmp_path,
        store,
        SAGEMAKER_SCRIPT,
        name="ons3",
        hyperparameters={"lr": "0.5", "epochs": "3", "optimizer": "sgd"},  # as boto3 sends them
        inputs={"train": data.uri_for("digits/train")},
        s3_endpoint_url=endpoint,
    )
    executor = LocalExecutor()
    executor.submit(spec)
    state = wait(executor, spec)
    assert state.phase == "succeeded", state.reason
    report = json.loads(archive(spec, "model.tar.gz")["model.json"])
    assert report["rows"] == 2 and report["args"] == [0.5, 3, "sgd"]
    assert report["hps"] == {"lr": 0.5, "epochs": 3, "optimizer": "sgd"}
    log = (spec.work_dir / "logs" / "job.log").read_text()
    assert "staging channel train: 2 files, 9 B (downloading s3://" in log
    assert store.exists("jobs/ons3/logs/job.log")


BESIDE = """
    import os
    with open("config.txt") as f:  # beside the script, as SageMaker's /opt/ml/code
        text = f.read()
    name = f"seen{os.environ['RANK']}.txt"
    with open(os.path.join(os.environ["SM_MODEL_DIR"], name), "w") as f:
        f.write(f"{text} {os.getcwd()}")
"""


def test_the_script_runs_in_its_source_directory(tmp_path: Path) -> None:
    """A script opens the files that came with it by relative path, in cold starts and torchrun."""
    store = open_artifact_store((tmp_path / "artifacts").as_uri())
    executor = LocalExecutor()
    for name, procs in (("beside", 1), ("beside-ddp", 2)):
        files = {"train.py": BESIDE, "config.txt": "lr=0.5"}
        spec = launch_spec(tmp_path, store, files, name, processes_per_node=procs)
        executor.submit(spec)
        state = wait(executor, spec, timeout=60)
        assert state.phase == "succeeded", state.reason
        code = (spec.work_dir / "code").resolve()
        seen = {k: v.decode() for k, v in archive(spec, "model.tar.gz").items()}
        assert seen == {f"seen{rank}.txt": f"lr=0.5 {code}" for rank in range(procs)}


def test_failure_file_is_the_reason(job: Job) -> None:
    spec = job(
        """
        import os
        with open(os.path.join(os.environ["SM_OUTPUT_DIR"], "failure"), "w") as f:
            f.write("Column 'label' is missing from train.csv; add it and resubmit.")
        raise SystemExit(1)
        """,
        name="failfile",
    )
    executor = LocalExecutor()
    executor.submit(spec)
    state = wait(executor, spec)
    assert state.phase == "failed"
    assert state.reason == "Column 'label' is missing from train.csv; add it and resubmit."
    assert state.exit_code == 1


def test_exception_reason_has_exit_code_and_last_line(job: Job) -> None:
    spec = job("raise ValueError('learning rate must be positive, got -1')\n", name="raises")
    executor = LocalExecutor()
    executor.submit(spec)
    state = wait(executor, spec)
    assert state.phase == "failed" and state.exit_code == 1
    assert state.reason is not None and state.reason.startswith("exit code 1.")
    assert state.reason.endswith("ValueError: learning rate must be positive, got -1")


DDP_SCRIPT = """
    import os
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    model = DistributedDataParallel(torch.nn.Linear(4, 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(100 + rank)  # each rank sees different data
    x = torch.randn(64, 4, generator=gen)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    for step in range(20):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
    print(f"final loss {loss.item():.4f} world {dist.get_world_size()}")
    out = os.environ["SM_OUTPUT_DATA_DIR"]
    torch.save(model.module.state_dict(), os.path.join(out, f"rank{rank}.pt"))
    dist.barrier()  # no rank tears gloo down while its peer still talks to it
    dist.destroy_process_group()
"""


def test_torchrun_ddp_two_processes(job: Job, tmp_path: Path) -> None:
    spec = job(DDP_SCRIPT, name="ddp", processes_per_node=2)
    executor = LocalExecutor()
    executor.submit(spec)
    state = wait(executor, spec, timeout=60)
    assert state.phase == "succeeded", state.reason

    import torch  # only now: importing it takes a core the job's workers need

    files = archive(spec, "output.tar.gz")
    assert sorted(files) == ["rank0.pt", "rank1.pt"]
    weights = [torch.load(io.BytesIO(files[f"rank{r}.pt"]), weights_only=True) for r in (0, 1)]
    for key in weights[0]:
        assert torch.equal(weights[0][key], weights[1][key]), key

    log = (spec.work_dir / "logs" / "job.log").read_text()
    assert "[rank0] final loss" in log and "[rank1] final loss" in log
    per_rank = spec.work_dir / "logs" / "attempt-0" / "rank1.stdout.log"
    assert per_rank.read_text().startswith("final loss")
    stored = [i.path for i in open_artifact_store(spec.artifact_root).list("jobs/ddp/logs", True)]
    assert "jobs/ddp/logs/attempt-0/rank0.stdout.log" in stored


SLEEPER = """
    import os, signal, subprocess, sys, time

    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # forces the supervisor to SIGKILL after grace
    child = subprocess.Popen(["sleep", "60"])  # same group
    loner = subprocess.Popen(["sleep", "60"], start_new_session=True)  # like torchrun workers
    with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "..", "..", "pids"), "w") as f:
        f.write(f"{os.getpid()} {child.pid} {loner.pid}\\n")
    time.sleep(60)
"""


def test_stop_ends_every_process(job: Job) -> None:
    spec = job(SLEEPER, name="stopme")
    executor = LocalExecutor()
    executor.submit(spec)
    pids = [int(p) for p in wait_for_file(spec.work_dir / "pids").split()]
    assert executor.poll(spec).phase == "running"
    started = time.monotonic()
    executor.stop(spec, grace_s=1.0)
    state = wait(executor, spec, timeout=10)
    assert time.monotonic() - started < 1.0 + 4.0
    assert state.phase == "stopped" and state.reason == "Stopped on request"
    assert [pid for pid in pids if not gone(pid)] == []
    executor.stop(spec, grace_s=1.0)  # idempotent once stopped
    assert executor.poll(spec).phase == "stopped"


def test_a_stop_during_the_source_download_ends_the_job_stopped_not_failed(
    job: Job, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop that lands while boto3 waits on S3 must not read as a failed fetch."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "naiad")  # the supervisor inherits them
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "naiad-secret")
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        silent.settimeout(20)
        spec = job("print('never runs')\n", name="fetching")
        spec = dataclasses.replace(
            spec,
            source_uri="s3://code/sourcedir.tar.gz",
            s3_endpoint_url=f"http://127.0.0.1:{silent.getsockname()[1]}",
        )
        executor = LocalExecutor()
        executor.submit(spec)
        connection, _ = silent.accept()  # the download has begun
        with connection:
            executor.stop(spec, grace_s=1.0)
            state = wait(executor, spec, timeout=15)
    assert state.phase == "stopped", state.reason
    assert state.reason == "Stopped on request"


def test_max_runtime_is_enforced(job: Job) -> None:
    spec = job("import time\nprint('sleeping', flush=True)\ntime.sleep(60)\n", name="slow")
    spec = dataclasses.replace(spec, max_runtime_s=1, stop_grace_s=1.0)
    executor = LocalExecutor()
    started = time.monotonic()
    executor.submit(spec)
    state = wait(executor, spec, timeout=15)
    assert state.phase == "stopped"
    assert state.reason == "Stopped: exceeded max_runtime_s=1"
    assert time.monotonic() - started < 1 + 1 + 4


RESUMING = """
    import os, signal
    import torch
    from naiad.runtime import checkpoints

    attempt = int(os.environ["NAIAD_ATTEMPT"])
    found = checkpoints.latest()
    if found is None:
        checkpoints.save({"w": torch.tensor([1.5])}, step=7)
        print("saved step 7; dying", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "resumed.txt"), "w") as f:
        f.write(f"{attempt} {found['step']} {found['state']['w'].item()}")
"""


def test_retry_resumes_from_checkpoint(job: Job) -> None:
    spec = job(RESUMING, name="retry", max_retries=1)
    executor = LocalExecutor()
    executor.submit(spec)
    state = wait(executor, spec, timeout=45)
    assert state.phase == "succeeded", state.reason
    assert state.attempt == 1
    assert archive(spec, "model.tar.gz")["resumed.txt"] == b"1 7 1.5"
    log = (spec.work_dir / "logs" / "job.log").read_text()
    assert "attempt 0 failed (killed by SIGKILL (exit code -9)); retrying (1 of 1" in log


def test_supervisor_outlives_its_submitter(job: Job) -> None:
    spec = job(
        "import time, os\ntime.sleep(1.5)\n"
        "open(os.path.join(os.environ['SM_MODEL_DIR'], 'done'), 'w').write('yes')\n",
        name="orphan",
    )
    spec.work_dir.mkdir(parents=True)
    write_spec(spec)
    code = (
        "import sys; from pathlib import Path\n"
        "from naiad.executors.local import LocalExecutor\n"
        "from naiad.executors.supervisor.workdir import read_spec\n"
        "LocalExecutor().submit(read_spec(Path(sys.argv[1])))\n"
        "print('submitted', flush=True)\n"
        "import time; time.sleep(60)\n"
    )
    submitter = subprocess.Popen(
        [sys.executable, "-c", code, str(spec.work_dir)],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert submitter.stdout is not None and submitter.stdout.readline() == b"submitted\n"
    os.killpg(submitter.pid, signal.SIGKILL)  # the "server" dies, its whole group with it
    submitter.wait()
    executor = LocalExecutor()  # a new server process re-attaches through the files
    assert executor.poll(spec).phase in ("starting", "running")
    state = wait(executor, spec)
    assert state.phase == "succeeded", state.reason
    assert archive(spec, "model.tar.gz") == {"done": b"yes"}


MOVING = """
    import os
    from naiad.runtime import checkpoints
    saved = checkpoints.latest()
    if saved is None:
        checkpoints.save({"step": 5}, step=5)
        raise SystemExit(1)  # this machine fails for good after saving
    out = os.path.join(os.environ["SM_MODEL_DIR"], "resumed.txt")
    open(out, "w").write(str(saved["state"]["step"]))
"""


def test_checkpoints_follow_the_job_to_another_machine(tmp_path: Path) -> None:
    """Checkpoints are mirrored to the store, so a fresh work dir resumes from them."""
    store = open_artifact_store((tmp_path / "artifacts").as_uri())
    first = launch_spec(tmp_path / "machine-a", store, {"train.py": MOVING}, name="moving")
    executor = LocalExecutor()
    executor.submit(first)
    assert wait(executor, first).phase == "failed"
    assert [i.path for i in store.list("jobs/moving/checkpoints")] == [
        "jobs/moving/checkpoints/ckpt-000000000005.pt"
    ]
    second = launch_spec(tmp_path / "machine-b", store, {"train.py": MOVING}, name="moving")
    executor.submit(second)
    state = wait(executor, second)
    assert state.phase == "succeeded", state.reason
    assert archive(second, "model.tar.gz")["resumed.txt"] == b"5"
    assert "restored 1 checkpoint file(s)" in (second.work_dir / "logs" / "job.log").read_text()


def test_callers_reach_a_job_only_through_its_handle(job: Job, tmp_path: Path) -> None:
    """The log (whole lines, one rank's, followed from an offset), the spooled metrics and
    the files a finished job left, all by the handle that submit returned."""
    script = 'for i in range(3):\n    print(f"[rank{i % 2}] line {i}", flush=True)\n'
    spec = job(script, name="handled")
    executor = LocalExecutor(root=tmp_path / "jobs")
    handle = executor.submit(spec)
    assert handle.id == "handled"  # relative to the jobs folder: it survives a moved home
    assert executor.find("handled") == handle and executor.find("other") is None
    assert wait(executor, spec).phase.terminal

    whole = executor.read_log(handle, 0, 1 << 20)
    assert "[rank0] line 0\n[rank1] line 1\n[rank0] line 2\n" in whole.text and whole.eof
    first_line = whole.text.splitlines(True)[0]
    first = executor.read_log(handle, 0, len(first_line) + 3)
    assert first.text == first_line and not first.eof  # cut at the last whole line
    rest = executor.read_log(handle, first.offset, 1 << 20)
    assert first.text + rest.text == whole.text
    assert executor.read_log(handle, 0, 1 << 20, rank=1).text == "[rank1] line 1\n"

    spool = spec.work_dir / ".naiad-home" / "spool" / spec.run_id
    spool.mkdir(parents=True, exist_ok=True)
    loss = {"steps": [0], "timestamps": [1.0e9], "values": [0.5]}
    batch = {"batch_id": "b1", "metrics": {"loss": loss}}
    (spool / "1-b1.json").write_text(json.dumps(batch))
    (spool / "2-torn.json").write_text("{")
    assert [b.batch_id for b in executor.collect_metrics(handle, spec.run_id)] == ["b1"]
    assert (spool / "1-b1.json").exists()  # kept until the caller has committed the points
    executor.drop_metrics(handle, spec.run_id, ["b1"])
    assert not (spool / "1-b1.json").exists() and (spool / "2-torn.json").exists()

    assert set(executor.held()) == {"handled"}
    deadline = time.monotonic() + 10  # the supervisor exits just after recording the end
    while (cleared := executor.clear(handle, [])) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cleared is not None and cleared > 0
    kept = sorted(p.name for p in spec.work_dir.iterdir())
    assert kept == ["logs", "spec.json", "state.json", "supervisor.log"]
    assert executor.read_log(handle, 0, 1 << 20).text == whole.text
    assert executor.remove(handle) and not spec.work_dir.exists()


def test_a_new_job_with_a_deleted_jobs_name_runs_afresh(job: Job, tmp_path: Path) -> None:
    """A folder left by a deleted job of the same name is not this job's ending."""
    executor = LocalExecutor(root=tmp_path / "jobs")
    first = job("import sys\nsys.exit(3)\n", name="same")
    executor.submit(first)
    assert wait(executor, first).phase == "failed"
    second = dataclasses.replace(job("print('fresh')\n", name="same"), run_id="run-second")
    executor.submit(second)
    assert wait(executor, second).phase == "succeeded"
    assert "fresh" in executor.read_log(executor.submit(second), 0, 1 << 20).text
