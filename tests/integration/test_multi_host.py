"""Jobs on several hosts, emulated on this machine: algo-1..algo-N each a process tree of
its own, with its own SageMaker view, data share and directories; torch.distributed across
them; a host's failure, a stop; the job's environment; checkpoints kept at a URI.

No server for the runs: the test polls the local executor as the controller would."""

import io
import json
import os
import signal
import tarfile
import time
from pathlib import Path
from typing import Any

import pytest

from naiad.core.errors import InvalidInput
from naiad.executors.base import GangPlace, LaunchSpec
from naiad.executors.local import LocalExecutor
from naiad.executors.supervisor.workdir import proc_alive
from naiad.schemas.jobs import JobCreate
from naiad.server.app import build_state
from naiad.services import jobs as job_service
from naiad.settings import Settings
from naiad.store.artifacts import ArtifactStore, open_artifact_store
from naiad.store.db import transaction
from naiad.testing.jobs import launch_spec, source_tarball, wait_terminal


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return open_artifact_store((tmp_path / "artifacts").as_uri())


def job(tmp_path: Path, store: ArtifactStore, script: str, name: str, **fields: Any) -> LaunchSpec:
    return launch_spec(tmp_path, store, {"train.py": script}, name, **fields)


def members(store: ArtifactStore, path: str) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(store.get_bytes(path)), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def gone(pid: int) -> bool:
    return not proc_alive(pid)  # a zombie has exited: only its parent has yet to hear


REPORT = """
    import json, os, time
    started = time.time()
    env = os.environ
    def listing(channel):
        root = env["SM_CHANNEL_" + channel.upper()]
        return sorted(
            os.path.relpath(os.path.join(d, f), root)
            for d, _, names in os.walk(root, followlinks=True) for f in names
        )
    config = os.path.join(env["SM_INPUT_CONFIG_DIR"], "resourceconfig.json")
    report = {
        "started": started,
        "host": env["SM_CURRENT_HOST"],
        "hosts": json.loads(env["SM_HOSTS"]),
        "master": [json.loads(env["SM_IS_MASTER"]), env["SM_MASTER_HOSTNAME"]],
        "resource": json.load(open(config)),
        "resource_env": json.loads(env["SM_RESOURCE_CONFIG"]),
        "data_config": json.loads(env["SM_INPUT_DATA_CONFIG"]),
        "rank": [env["RANK"], env["WORLD_SIZE"]],
        "shard": listing("shard"),
        "full": listing("full"),
        "flag": [env.get("MY_FLAG"), env["PYTHONUNBUFFERED"]],
        "model_dir": env["SM_MODEL_DIR"],
    }
    with open(os.path.join(env["SM_MODEL_DIR"], "report.json"), "w") as f:
        json.dump(report, f)
    with open(os.path.join(env["SM_OUTPUT_DATA_DIR"], env["SM_CURRENT_HOST"]), "w") as f:
        f.write("out")
    print("host", env["SM_CURRENT_HOST"], "saw", len(report["shard"]), "shard files")
"""


def test_two_hosts_each_see_their_own_view(tmp_path: Path, store: ArtifactStore) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for i in range(4):
        (data / f"part-{i}.csv").write_text(f"{i}\n")
    spec = job(
        tmp_path,
        store,
        REPORT,
        "two-hosts",
        nodes=2,
        inputs={"shard": data.as_uri(), "full": data.as_uri()},
        channels={"shard": {"distribution": "ShardedByS3Key"}},
        environment={"MY_FLAG": "on", "PYTHONUNBUFFERED": "0"},
    )
    executor = LocalExecutor()
    submitted = time.time()
    executor.submit(spec)
    state = wait_terminal(executor, spec, timeout=60)
    assert state.phase == "succeeded", state.reason

    reports = {}
    for host in ("algo-1", "algo-2"):
        path = spec.work_dir / "hosts" / host / "model" / "report.json"
        reports[host] = json.loads(path.read_text())
    both_running = max(r["started"] for r in reports.values()) - submitted
    print(f"submit to both hosts running: {both_running:.2f}s")
    for host, other in (("algo-1", "algo-2"), ("algo-2", "algo-1")):
        report = reports[host]
        assert report["host"] == host and report["hosts"] == ["algo-1", "algo-2"]
        assert report["master"] == [host == "algo-1", "algo-1"]
        assert report["resource"] == report["resource_env"]
        assert report["resource"]["current_host"] == host
        assert report["resource"]["current_group_name"] == "homogeneousCluster"
        assert report["resource"]["instance_groups"][0]["hosts"] == ["algo-1", "algo-2"]
        assert report["rank"] == [str(int(host[-1]) - 1), "2"]
        assert report["full"] == [f"part-{i}.csv" for i in range(4)]
        assert report["flag"] == ["on", "1"]  # the job's variable; Naiad's win a clash
        assert other not in report["model_dir"]
    assert reports["algo-1"]["shard"] == ["part-0.csv", "part-2.csv"]
    assert reports["algo-2"]["shard"] == ["part-1.csv", "part-3.csv"]
    assert reports["algo-2"]["data_config"]["shard"]["S3DistributionType"] == "ShardedByS3Key"
    assert reports["algo-2"]["data_config"]["full"]["S3DistributionType"] == "FullyReplicated"

    # The master host's model and output are what is kept.
    assert json.loads(members(store, "jobs/two-hosts/output/model.tar.gz")["report.json"])[
        "host"
    ] == ("algo-1")
    assert members(store, "jobs/two-hosts/output/output.tar.gz") == {"algo-1": b"out"}
    log = (spec.work_dir / "logs" / "job.log").read_text()
    assert "host algo-1 saw 2 shard files\n" in log
    assert "[algo-2] host algo-2 saw 2 shard files\n" in log
    assert "starting 1 process on each of 2 hosts (algo-1, algo-2)" in log


def test_a_gang_host_sees_its_own_machine_and_share_and_leaves_results_to_rank_0(
    tmp_path: Path, store: ArtifactStore
) -> None:
    """A supervisor for one host of a gang spread over machines (as the Ray executor
    starts one per node): the gang's host names, node 0's address, its own share of a
    sharded channel, its checkpoints mirrored while it runs, no model.tar.gz of its own."""
    data = tmp_path / "data"
    data.mkdir()
    for i in range(4):
        (data / f"part-{i}.csv").write_text(f"{i}\n")
    script = (
        REPORT
        + """
    import pathlib
    ckpt = pathlib.Path(env["NAIAD_CHECKPOINT_DIR"])
    (ckpt / "rank1.bin").write_text("shard of rank 1")
    (ckpt / ".partial").mkdir()
    (ckpt / ".partial" / "x").write_text("being written")
    time.sleep(2.5)  # past a mirror period
    print("master", env["MASTER_ADDR"], env["MASTER_PORT"], env["SM_MASTER_ADDR"])
"""
    )
    gang = GangPlace(["10.0.0.5", "10.0.0.6"], 1, "127.0.0.2", 29511, attempt=2)
    spec = job(
        tmp_path,
        store,
        script,
        "gang-host",
        nodes=2,
        gang=gang,
        inputs={"shard": data.as_uri(), "full": data.as_uri()},
        channels={"shard": {"distribution": "ShardedByS3Key"}},
    )
    executor = LocalExecutor()
    executor.submit(spec)
    state = wait_terminal(executor, spec, timeout=60)
    assert state.phase == "succeeded", state.reason
    assert state.attempt == 2  # the gang's attempt, not this supervisor's first
    report = json.loads((spec.work_dir / "model" / "report.json").read_text())
    assert report["host"] == "10.0.0.6" and report["hosts"] == ["10.0.0.5", "10.0.0.6"]
    assert report["master"] == [False, "10.0.0.5"]
    assert report["resource"]["current_host"] == "10.0.0.6"
    assert report["rank"] == ["1", "2"]
    assert report["shard"] == ["part-1.csv", "part-3.csv"]  # its share only
    assert report["full"] == [f"part-{i}.csv" for i in range(4)]
    log = (spec.work_dir / "logs" / "job.log").read_text()
    assert "master 127.0.0.2 29511 127.0.0.2" in log
    assert "starting 1 process on host 10.0.0.6 (2 of 2; master 127.0.0.2:29511)" in log
    assert "host 10.0.0.6 succeeded" in log
    assert not store.exists("jobs/gang-host/output/model.tar.gz")  # rank 0's host uploads
    assert store.get_bytes("jobs/gang-host/checkpoints/rank1.bin") == b"shard of rank 1"
    assert not store.list("jobs/gang-host/checkpoints/.partial")
    assert store.exists("jobs/gang-host/logs/10.0.0.6/job.log")


DDP = """
    import os
    import sys
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    total = torch.tensor([float(rank)])
    dist.all_reduce(total)
    # one write: unbuffered (PYTHONUNBUFFERED), print writes the text and its newline
    # apart, and torchrun's tee, reading between them, can split the line around another
    # rank's (seen once under load); this test is about the prefixes, not torchrun's tee
    line = f"host {os.environ['SM_CURRENT_HOST']} rank {rank} of {world} sum {total.item():.0f}"
    sys.stdout.write(line + "\\n")
    out = os.path.join(os.environ["NAIAD_CHECKPOINT_DIR"], f"rank{rank}.txt")
    with open(out, "w") as f:
        f.write(f"{os.environ['SM_CURRENT_HOST']} {os.environ['LOCAL_RANK']} {world}")
    dist.barrier()  # no rank tears gloo down while its peer still talks to it
    dist.destroy_process_group()
"""


def test_torch_distributed_spans_two_hosts_of_two_processes(
    tmp_path: Path, store: ArtifactStore
) -> None:
    spec = job(tmp_path, store, DDP, "ddp-hosts", nodes=2, processes_per_node=2)
    executor = LocalExecutor(root=tmp_path / "jobs")
    handle = executor.submit(spec)
    state = wait_terminal(executor, spec, timeout=120)
    assert state.phase == "succeeded", state.reason
    seen = {
        rank: (spec.work_dir / "checkpoints" / f"rank{rank}.txt").read_text() for rank in range(4)
    }
    assert seen == {0: "algo-1 0 4", 1: "algo-1 1 4", 2: "algo-2 0 4", 3: "algo-2 1 4"}
    log = executor.read_log(handle, 0, 1 << 20).text
    assert "[rank0] host algo-1 rank 0 of 4 sum 6" in log
    assert "[algo-2] [rank3] host algo-2 rank 3 of 4 sum 6" in log
    assert executor.read_log(handle, 0, 1 << 20, rank=3).text.strip() == (
        "[algo-2] [rank3] host algo-2 rank 3 of 4 sum 6"
    )
    attempt = spec.work_dir / "logs" / "attempt-0"
    assert sorted(p.name for p in attempt.glob("rank*.stdout.log")) == [
        f"rank{r}.stdout.log" for r in range(4)
    ]
    assert (attempt / "rank2.stdout.log").read_text().startswith("host algo-2 rank 2")


FAILING = """
    import os, sys, time
    if os.environ["SM_CURRENT_HOST"] == "algo-2":
        time.sleep(0.5)
        with open(os.path.join(os.environ["SM_OUTPUT_DIR"], "failure"), "w") as f:
            f.write("Shard 2 has no rows; check the data.")
        sys.exit(3)
    with open(os.path.join(os.environ["NAIAD_CHECKPOINT_DIR"], "pid"), "w") as f:
        f.write(str(os.getpid()))
    time.sleep(60)
"""


def test_a_failing_host_fails_the_attempt_and_ends_the_others(
    tmp_path: Path, store: ArtifactStore
) -> None:
    spec = job(tmp_path, store, FAILING, "one-fails", nodes=2)
    executor = LocalExecutor()
    started = time.monotonic()
    executor.submit(spec)
    state = wait_terminal(executor, spec, timeout=30)
    assert time.monotonic() - started < 20  # algo-1 was ended, not waited for
    assert state.phase == "failed" and state.exit_code == 3
    assert state.reason == "Host algo-2: Shard 2 has no rows; check the data."
    assert gone(int((spec.work_dir / "checkpoints" / "pid").read_text()))
    assert (
        "host algo-2 failed (exit code 3); ending the other hosts"
        in (spec.work_dir / "logs" / "job.log").read_text()
    )


SLEEPERS = """
    import os, subprocess, time
    child = subprocess.Popen(["sleep", "60"], start_new_session=True)
    name = os.path.join(os.environ["NAIAD_CHECKPOINT_DIR"], os.environ["SM_CURRENT_HOST"])
    with open(name + ".tmp", "w") as f:
        f.write(f"{os.getpid()} {child.pid}")
    os.rename(name + ".tmp", name)
    time.sleep(60)
"""


def test_stop_ends_every_host(tmp_path: Path, store: ArtifactStore) -> None:
    spec = job(tmp_path, store, SLEEPERS, "stop-hosts", nodes=2)
    executor = LocalExecutor()
    executor.submit(spec)
    files = [spec.work_dir / "checkpoints" / h for h in ("algo-1", "algo-2")]
    deadline = time.monotonic() + 30
    while not all(f.exists() for f in files):
        assert time.monotonic() < deadline, "the hosts did not start"
        time.sleep(0.05)
    pids = [int(p) for f in files for p in f.read_text().split()]
    executor.stop(spec, grace_s=1.0)
    state = wait_terminal(executor, spec, timeout=15)
    assert state.phase == "stopped" and state.reason == "Stopped on request"
    assert [pid for pid in pids if not gone(pid)] == []


SAVES = """
    import os
    ckpt = os.environ["NAIAD_CHECKPOINT_DIR"]
    found = sorted(os.listdir(ckpt))
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "found.txt"), "w") as f:
        f.write(",".join(found))
    with open(os.path.join(ckpt, os.environ["NAIAD_JOB_NAME"] + ".ckpt"), "w") as f:
        f.write("state")
"""


def test_checkpoint_uri_restores_a_previous_jobs_files(
    tmp_path: Path, store: ArtifactStore
) -> None:
    executor = LocalExecutor()
    store.put_bytes("checkpoints/shared/unrelated.txt", b"not the job's")
    first = job(tmp_path, store, SAVES, "first", checkpoint_uri="checkpoints/shared")
    executor.submit(first)
    assert wait_terminal(executor, first).phase == "succeeded"
    second = job(tmp_path, store, SAVES, "second", checkpoint_uri="checkpoints/shared")
    executor.submit(second)
    assert wait_terminal(executor, second).phase == "succeeded"
    found = members(store, "jobs/second/output/model.tar.gz")["found.txt"]
    assert found == b"first.ckpt,unrelated.txt"
    paths = sorted(i.path for i in store.list("checkpoints/shared", recursive=True))
    assert paths == [
        "checkpoints/shared/first.ckpt",
        "checkpoints/shared/second.ckpt",
        "checkpoints/shared/unrelated.txt",
    ]
    assert not store.exists("jobs/second/checkpoints")
    log = (second.work_dir / "logs" / "job.log").read_text()
    assert "restored 2 checkpoint file(s) from checkpoints/shared" in log


def test_submit_refuses_what_cannot_run_with_a_sentence(settings: Settings) -> None:
    state = build_state(settings)
    state.artifacts.put_bytes("sources/x.tar.gz", source_tarball({"train.py": "print(1)"}))
    base = {"entrypoint": "train.py", "source_uri": "sources/x.tar.gz"}

    def refusal(**fields: Any) -> str:
        body = JobCreate.model_validate({"name": "refused", **base, **fields})
        with pytest.raises(InvalidInput) as caught, transaction(state.sessions) as session:
            job_service.submit(session, body, state.artifacts, slots=4, nodes=4)
        return caught.value.message

    assert refusal(nodes=3, processes_per_node=2) == (
        "The job asks for 3 nodes x 2 processes per node = 6 processes, but the executor "
        "has 4 slots (one per process, on every node); ask for at most 4 in all."
    )
    assert "at most 4 nodes" in refusal(nodes=5)
    assert "not a place Naiad can keep checkpoints" in refusal(checkpoint_uri="s3://bucket")
    assert "not a place Naiad can keep checkpoints" in refusal(checkpoint_uri="/abs/path")
    with transaction(state.sessions) as session:
        body = JobCreate.model_validate(
            {"name": "fits", **base, "nodes": 2, "processes_per_node": 2}
        )
        row = job_service.submit(session, body, state.artifacts, slots=4)
        assert row.spec.processes == 4
    state.engine.dispose()


def test_every_hosts_script_dies_with_the_supervisor(tmp_path: Path, store: ArtifactStore) -> None:
    """PR_SET_PDEATHSIG holds for each host's tree; the executor's poll ends the rest."""
    spec = job(tmp_path, store, SLEEPERS, "orphaned-hosts", nodes=2)
    executor = LocalExecutor()
    executor.submit(spec)
    files = [spec.work_dir / "checkpoints" / h for h in ("algo-1", "algo-2")]
    deadline = time.monotonic() + 30
    while not all(f.exists() for f in files):
        assert time.monotonic() < deadline, "the hosts did not start"
        time.sleep(0.05)
    scripts, loners = zip(*[[int(p) for p in f.read_text().split()] for f in files], strict=True)
    os.kill(int((spec.work_dir / "supervisor.pid").read_text().split()[0]), signal.SIGKILL)
    deadline = time.monotonic() + 10
    while not all(map(gone, scripts)):
        assert time.monotonic() < deadline, "a host's script outlived its supervisor"
        time.sleep(0.05)
    state = wait_terminal(executor, spec, timeout=15)
    assert state.phase == "lost"
    assert [pid for pid in loners if not gone(pid)] == []
