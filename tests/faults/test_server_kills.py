"""The server SIGKILLed every few seconds while 20 runs log metrics, a DDP job trains with
checkpoints and an endpoint serves closed-loop traffic. Afterwards every logged point is
stored exactly once, the job ends with the weights an undisturbed run computes, and the
only requests that failed were those in flight through the killed server."""

import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

import naiad
from naiad.testing import postgres
from naiad.testing.endpoints import kill_replicas, scale_model
from naiad.testing.live import LiveServer
from naiad.testing.s3 import S3Server
from tests.conftest import need
from tests.faults.loggers import Loggers

pytestmark = [pytest.mark.faults, pytest.mark.postgres, pytest.mark.s3, pytest.mark.slow]

RUNS, POINTS, KILLS = 20, 1500, 3
STEPS, BATCH = 60, 16

TRAIN = f"""
import time

import torch
import torch.distributed as dist
from torch import nn
from naiad import runtime

ctx = runtime.context()
info = runtime.init_distributed()
torch.manual_seed(0)
torch.set_num_threads(1)
model = nn.Linear(8, 1)
ddp = nn.parallel.DistributedDataParallel(model) if info.world_size > 1 else model
optimizer = torch.optim.SGD(ddp.parameters(), lr=0.05)
start = 0
saved = runtime.checkpoints.latest()
if saved is not None:
    model.load_state_dict(saved["state"]["model"])
    optimizer.load_state_dict(saved["state"]["optimizer"])
    start = saved["step"] + 1
for step in range(start, {STEPS}):
    x = torch.randn({BATCH}, 8, generator=torch.Generator().manual_seed(step))
    mine = x[info.rank :: info.world_size]  # equal halves: DDP's mean is the batch's mean
    loss = ((ddp(mine) - mine.sum(1, keepdim=True)) ** 2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    ctx.log_metrics({{"loss": loss.item()}}, step=step)
    if step % 10 == 9 and ctx.is_main:
        state = {{"model": model.state_dict(), "optimizer": optimizer.state_dict()}}
        runtime.checkpoints.save(state, step=step)
    time.sleep(0.15)  # long enough to span the kills
weights = torch.cat([p.detach().flatten() for p in model.parameters()])
ctx.log_metrics({{f"w{{i}}": float(v) for i, v in enumerate(weights)}}, step={STEPS})
"""


def undisturbed_weights() -> np.ndarray:
    """The same training in this process, on whole batches."""
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    for step in range(STEPS):
        x = torch.randn(BATCH, 8, generator=torch.Generator().manual_seed(step))
        loss = ((model(x) - x.sum(1, keepdim=True)) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return torch.cat([p.detach().flatten() for p in model.parameters()]).numpy()


class Traffic(threading.Thread):
    """Closed-loop requests through the server's front door, each sorted by how it ended."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__(daemon=True)
        self.url, self.token = url, token
        self.outcomes: Counter[str] = Counter()
        self.cut: list[tuple[float, str]] = []  # when, and how, a request was cut off
        self.longest = 0.0
        self.stop = threading.Event()

    def run(self) -> None:
        headers = {"authorization": f"Bearer {self.token}"}
        with httpx.Client(timeout=15) as http:
            while not self.stop.is_set():
                started = time.monotonic()
                try:
                    answer = http.post(
                        self.url, json={"inputs": [[1.0, 2.0, 3.0, 4.0]]}, headers=headers
                    )
                    self.outcomes[
                        "ok" if answer.status_code == 200 else f"http {answer.status_code}"
                    ] += 1
                except httpx.ConnectError:
                    self.outcomes["refused"] += 1  # the server was down: never in flight
                    time.sleep(0.05)
                except httpx.TransportError as exc:
                    self.outcomes["in flight"] += 1  # cut off by the kill
                    self.cut.append((time.monotonic(), f"{type(exc).__name__}: {exc}"))
                self.longest = max(self.longest, time.monotonic() - started)


def test_repeated_server_sigkills_under_load_lose_nothing(
    tmp_path: Path, s3_server: S3Server
) -> None:
    admin = postgres.admin_url()
    need(admin is not None, f"PostgreSQL ({postgres.ENV})")
    assert admin is not None
    with postgres.scratch_database(admin) as database:
        env = {
            "NAIAD_DATABASE_URL": database,
            "NAIAD_ARTIFACT_URI": s3_server.fresh_uri(),
            "NAIAD_S3_ENDPOINT_URL": s3_server.endpoint_url,
        }
        server = LiveServer(home=tmp_path / "home", env=env)
        server.start()
        try:
            chaos(server, tmp_path)
        finally:
            server.stop()
            kill_replicas(server.home)


def chaos(server: LiveServer, tmp_path: Path) -> None:
    client = naiad.Client(url=server.url, token=server.token)
    client.models.register("scale", path=scale_model(tmp_path / "scale", 2.0))
    client.endpoints.deploy("doubler", model="scale", wait=True, timeout=120)
    source = tmp_path / "src"
    source.mkdir()
    (source / "train.py").write_text(TRAIN)
    job = client.training_jobs.create(
        name="steady", entrypoint="train.py", source_dir=source, processes_per_node=2
    )
    loggers = Loggers(client, "chaos", RUNS, POINTS, pause_s=0.1)
    traffic = Traffic(f"{server.url}/endpoints/doubler/invocations", server.token)
    loggers.start()
    traffic.start()
    kills = []
    for _ in range(KILLS):
        time.sleep(2.0)
        kills.append(time.monotonic())
        server.kill()
        time.sleep(0.5)
        server.start()
    loggers.finish()
    time.sleep(2.0)  # traffic after the last restart
    traffic.stop.set()
    traffic.join(30)
    done = job.wait(timeout=180)

    # every point stored exactly once
    loggers.assert_stored_once()
    # the job, untouched by the kills, ends with the weights an undisturbed run computes
    assert done.status == "Completed", done.status_reason
    final = client.runs.get(done.run_id).metrics
    weights = np.array([final[f"w{i}"].value for i in range(9)])
    np.testing.assert_allclose(weights, undisturbed_weights(), rtol=1e-5, atol=1e-6)
    assert client.runs.metric_history(done.run_id, "loss").total_points == STEPS
    # the endpoint: the only failures were requests in flight when the server died (the one
    # being answered, or one the kernel had just accepted for it), and none hung
    outcomes = traffic.outcomes
    print(f"traffic: {dict(outcomes)}; longest request {traffic.longest:.2f}s")
    assert outcomes["ok"] > 0 and set(outcomes) <= {"ok", "refused", "in flight"}, outcomes
    for at, how in traffic.cut:
        assert any(0 <= at - kill < 0.5 for kill in kills), f"cut off at no kill: {how}"
    assert outcomes["in flight"] <= 2 * KILLS, traffic.cut
    assert traffic.longest < 15
