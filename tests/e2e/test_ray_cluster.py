"""Jobs on a real Ray cluster: a head and three worker nodes on this machine (one CPU
each), a live server with ``NAIAD_EXECUTOR=ray``. A gang of two nodes trains with
torch.distributed across them; a gang that does not fit waits, saying why; a node
killed mid-job makes the gang retry from its checkpoint; a stop ends every rank on
every node; a server killed and restarted finds its running job again."""

import importlib.util
import io
import os
import re
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import naiad
from naiad.sdk.jobs import JobHandle
from naiad.testing.live import LiveServer, free_port
from tests.conftest import EXAMPLES, example_module, need

pytestmark = [pytest.mark.ray, pytest.mark.slow]
SOURCE = Path(__file__).parent / "jobs"
GANG = {"entrypoint": "gang.py", "source_dir": SOURCE, "nodes": 2}


@pytest.fixture(scope="module")
def cluster(ray_cluster):  # type: ignore[no-untyped-def]
    """tests/conftest.py's: three workers of one CPU."""
    return ray_cluster


@pytest.fixture(scope="module")
def live(cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    from naiad.testing.ray_cluster import LOOPBACK_ENV

    env = {
        "NAIAD_EXECUTOR": "ray",
        "NAIAD_RAY_ADDRESS": cluster.address,
        "NAIAD_ELASTIC_REJOIN_S": "10",  # an elastic job asks for a lost host again soon
        **LOOPBACK_ENV,
    }
    server = LiveServer(home=tmp_path_factory.mktemp("naiad") / "home", env=env)
    server.start(timeout=60)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(live: LiveServer, monkeypatch: pytest.MonkeyPatch) -> naiad.Client:
    monkeypatch.setenv("NAIAD_HOME", str(live.home))
    monkeypatch.setenv("NAIAD_URL", live.url)
    monkeypatch.delenv("NAIAD_TOKEN", raising=False)
    return naiad.Client()


def log_of(job: JobHandle) -> str:
    return "".join(job.logs())


def wait_for(job: JobHandle, pattern: str, timeout: float = 90.0) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(pattern, log_of(job))
        if found:
            return found
        assert job.refresh().status not in ("Failed", "Stopped"), job.job.status_reason
        time.sleep(0.3)
    raise AssertionError(f"{pattern!r} not in the log of {job.name}:\n{log_of(job)}")


def test_a_two_node_gang_trains_with_the_same_weights_on_every_rank(
    client: naiad.Client,
) -> None:
    job = client.training_jobs.create(
        name="ddp", hyperparameters={"epochs": 2, "steps_per_epoch": 5}, **GANG
    )
    done = job.wait(timeout=120)
    assert done.status == "Completed", f"{done.status_reason}\n{log_of(job)}"
    log = log_of(job)
    assert re.search(r"the gang is placed on algo-1=127\.0\.0\.1 \(node \w+\), algo-2=", log)
    assert re.search(r'^rank 0 of 2 on algo-1 pid \d+ hosts \["algo-1", "algo-2"\]$', log, re.M)
    assert re.search(r"^\[algo-2\] rank 1 of 2 on algo-2 pid \d+", log, re.M)
    weights = re.findall(r"rank (\d) weights (\S+)", log)
    assert sorted(r for r, _ in weights) == ["0", "1"] and len({w for _, w in weights}) == 1
    history = client.runs.metric_history(done.run_id, "loss")
    assert history.steps.tolist() == list(range(10))  # rank 0's points, each step once
    assert log.count("model.tar.gz") == 1  # uploaded by rank 0's host alone


def test_a_keras_job_trains_under_multiworkermirroredstrategy_on_two_nodes(
    client: naiad.Client, tmp_path: Path
) -> None:
    """TF_CONFIG names each node's own address and a port free there (the gang's
    ``workers``): the example's two workers form one strategy across Ray nodes."""
    need(importlib.util.find_spec("tensorflow") is not None, "tensorflow (naiad[tensorflow])")
    tables = example_module("keras-tabular", "make_data").make(tmp_path, rows=1000)
    job = client.training_jobs.create(
        name="keras-ray",
        entrypoint="train.py",
        source_dir=EXAMPLES / "keras-tabular",
        nodes=2,
        hyperparameters={"epochs": 3},
        inputs={"train": str(tables["train"]), "test": str(tables["test"])},
    )
    done = job.wait(timeout=300)
    log = log_of(job)
    assert done.status == "Completed", f"{done.status_reason}\n{log[-3000:]}"
    assert "workers 2 test loss" in log
    assert client.runs.metric_history(done.run_id, "loss").steps.tolist() == [0, 1, 2]


def test_a_gang_that_does_not_fit_waits_and_starts_when_room_frees(
    client: naiad.Client,
) -> None:
    slow = {"epochs": 1, "steps_per_epoch": 8, "step_s": 0.5}
    first = client.training_jobs.create(name="first", hyperparameters=slow, **GANG)
    second = client.training_jobs.create(name="second", hyperparameters=slow, **GANG)
    deadline = time.monotonic() + 60
    while first.status not in ("Running", "Completed"):
        assert time.monotonic() < deadline, first.job.status_reason
        time.sleep(0.2)
    waiting = second.refresh()
    assert waiting.status == "Pending"  # 3 nodes of 1 CPU: no second pair while one runs
    assert waiting.status_reason == (
        "Waiting for resources: needs 2 nodes with 1 CPU free; 1 such free."
    )
    a, b = first.wait(timeout=120), second.wait(timeout=120)
    assert (a.status, b.status) == ("Completed", "Completed"), (a.status_reason, b.status_reason)
    assert a.ended_at is not None and b.started_at is not None and b.started_at >= a.ended_at


def test_stop_ends_every_rank_on_every_node(client: naiad.Client) -> None:
    job = client.training_jobs.create(
        name="stopped", hyperparameters={"epochs": 1, "steps_per_epoch": 200, "step_s": 0.2}, **GANG
    )
    wait_for(job, r"\[algo-2\] rank 1 of 2 .* pid \d+")
    pids = [int(p) for p in re.findall(r"rank \d of 2 on algo-\d pid (\d+)", log_of(job))]
    assert len(pids) == 2
    job.stop()
    done = job.wait(timeout=60)
    assert done.status == "Stopped", done.status_reason
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in pids)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_killed_server_reattaches_to_its_running_gang(
    client: naiad.Client, live: LiveServer
) -> None:
    job = client.training_jobs.create(
        name="outlives", hyperparameters={"epochs": 2, "steps_per_epoch": 10, "step_s": 0.3}, **GANG
    )
    wait_for(job, r"rank 0 checkpointed epoch 0")
    live.kill()
    time.sleep(1.0)
    live.start(timeout=60)
    done = job.wait(timeout=120)
    assert done.status == "Completed", done.status_reason
    log = log_of(job)
    assert log.count("rank 0 weights") == 1 and log.count("[algo-2] rank 1 weights") == 1
    assert log.count("rank 0 checkpointed epoch 0") == 1  # nothing read twice or lost
    assert done.attempt == 0


def test_a_lost_node_retries_the_whole_gang_from_its_checkpoint(
    client: naiad.Client, cluster, live: LiveServer
) -> None:  # type: ignore[no-untyped-def]
    job = client.training_jobs.create(
        name="lost-node",
        hyperparameters={"epochs": 4, "steps_per_epoch": 10, "step_s": 0.4},
        max_retries=1,
        **GANG,
    )
    placed = wait_for(job, r"algo-2=127\.0\.0\.1 \(node (\w+)\)")
    wait_for(job, r"rank 0 checkpointed epoch 0")
    mirrored = live.home / "artifacts/jobs/lost-node/checkpoints/ckpt-000000000000.pt"
    deadline = time.monotonic() + 30
    while not mirrored.exists():  # the host mirrors its checkpoints every 2 s
        assert time.monotonic() < deadline, "no checkpoint reached the artifact store"
        time.sleep(0.1)
    node = next(n for n in cluster.workers if n.node_id.startswith(placed[1]))
    cluster.remove(node)
    try:
        done = job.wait(timeout=180)
        assert done.status == "Completed", f"{done.status_reason}\n{log_of(job)}"
        assert done.attempt == 1
        log = log_of(job)
        assert re.search(r"attempt 0 failed \(Host algo-2 was lost", log), log
        assert re.search(r"rank 0 resumed after epoch [012]\n", log), log
        weights = re.findall(r"rank (\d) weights (\S+)", log)
        assert len({w for _, w in weights}) == 1
        history = client.runs.metric_history(done.run_id, "loss")
        assert history.steps.tolist() == list(range(40))  # each step once, none missing
    finally:
        cluster.workers.append(cluster.add())  # whole again for whatever runs next


def test_an_elastic_job_carries_on_without_a_lost_node_and_grows_back(
    client: naiad.Client, cluster
) -> None:  # type: ignore[no-untyped-def]
    """nodes="1:2": two hosts on two nodes; one node's raylet is killed mid-job and the
    other host carries on alone; a node joins the cluster and the job grows back to two,
    ending on its planned step with each step's metrics logged once."""
    steps = 600
    job = client.training_jobs.create(
        name="elastic-ray",
        entrypoint="elastic.py",
        source_dir=SOURCE,
        nodes="1:2",
        hyperparameters={"steps": steps, "step_s": 0.1, "checkpoint_every": 5},
    )
    wait_for(job, r"algo-2 (starts|joins) on 127\.0\.0\.1 \(node (\w+)\)", timeout=120)
    placed = re.search(r"algo-2 (?:starts|joins) on 127\.0\.0\.1 \(node (\w+)\)", log_of(job))
    assert placed is not None
    wait_for_resize(job, 2)
    deadline = time.monotonic() + 60
    while (loss := client.runs.get(job.job.run_id).metrics.get("loss")) is None or loss.step < 30:
        assert time.monotonic() < deadline, log_of(job)  # a few checkpoints in
        time.sleep(0.3)
    node = next(n for n in cluster.workers if n.node_id.startswith(placed[1]))
    cluster.remove(node)
    try:
        wait_for_resize(job, 1)
    finally:
        cluster.workers.append(cluster.add())  # a node joins: room for the lost host
    wait_for_resize(job, 2, after=1)
    done = job.wait(timeout=300)
    assert done.status == "Completed", f"{done.status_reason}\n{log_of(job)}"
    assert re.search(r"algo-2 was lost \(", log_of(job)), log_of(job)
    sizes = [(e.from_workers, e.to_workers) for e in done.events]
    assert (2, 1) in sizes and sizes[-1] == (1, 2), sizes
    loss = client.runs.metric_history(done.run_id, "loss")
    assert loss.steps.tolist() == list(range(1, steps + 1))  # each step once, none missing


def wait_for_resize(job: JobHandle, workers: int, after: int = 0, timeout: float = 180) -> None:
    """Until the job has a resize to ``workers`` (past its first ``after`` resizes to it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = job.refresh()
        if sum(e.to_workers == workers for e in now.events) > after:
            return
        assert now.status not in ("Completed", "Failed", "Stopped"), (
            f"{now.status}: {now.status_reason} {now.events}\n{log_of(job)}"
        )
        time.sleep(0.5)
    raise AssertionError(f"no resize to {workers}: {job.job.events}\n{log_of(job)}")


def test_an_fsdp_gang_splits_the_model_over_two_nodes_and_matches_ddp(
    client: naiad.Client, live: LiveServer
) -> None:
    """examples/sharded on two nodes of one process: FSDP holds half the parameters on
    each node, its sharded checkpoint is whole in the artifact store (each node mirrors
    its own shard), and its consolidated model equals DDP's."""
    example = Path(__file__).resolve().parents[2] / "examples" / "sharded"
    hp = {"epochs": 1, "seed": 3, "hidden": 64, "batch_size": 64}
    ended = {}
    for strategy in ("fsdp", "ddp"):
        job = client.training_jobs.create(
            name=f"gang-{strategy}",
            entrypoint="train.py",
            source_dir=example,
            hyperparameters={**hp, "strategy": strategy},
            nodes=2,
        )
        ended[strategy] = job.wait(timeout=180)
        assert ended[strategy].status == "Completed", log_of(job)
    full = (64 * 64 + 64) + (64 * 64 + 64) + (64 * 10 + 10)  # DigitsMLP(64), float32
    for rank in (0, 1):
        fsdp = client.runs.metric_history(ended["fsdp"].run_id, f"param_bytes/rank{rank}")
        ddp = client.runs.metric_history(ended["ddp"].run_id, f"param_bytes/rank{rank}")
        assert (fsdp.values.tolist(), ddp.values.tolist()) == ([full * 4 // 2], [full * 4])
    losses = {
        s: client.runs.metric_history(e.run_id, "train/loss").values.tolist()
        for s, e in ended.items()
    }
    assert losses["fsdp"] == pytest.approx(losses["ddp"], abs=1e-4)
    store = live.home / "artifacts" / "jobs" / "gang-fsdp" / "checkpoints"
    shards = sorted(p.name for p in store.glob("step-*/*.distcp"))
    assert shards == ["__0_0.distcp", "__1_0.distcp"], sorted(store.rglob("*"))
    weights = {}
    for strategy in ("fsdp", "ddp"):
        archive = live.home / "artifacts" / "jobs" / f"gang-{strategy}" / "output" / "model.tar.gz"
        with tarfile.open(archive) as tar:
            member = tar.extractfile("state_dict.pt")
            assert member is not None
            weights[strategy] = torch.load(io.BytesIO(member.read()), weights_only=True)
    for key, value in weights["ddp"].items():
        torch.testing.assert_close(weights["fsdp"][key], value, atol=1e-4, rtol=1e-4)


def test_a_cluster_that_does_not_answer_is_a_sentence_not_a_hang(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "NAIAD_HOME": str(tmp_path / "home"),
        "NAIAD_EXECUTOR": "ray",
        "NAIAD_RAY_ADDRESS": f"127.0.0.1:{free_port()}",
    }
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "naiad.cli.main", "server", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and time.monotonic() - started < 30
    assert "does not answer" in done.stderr and "ray start --head" in done.stderr
    assert "Traceback" not in done.stderr
