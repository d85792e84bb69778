"""Serving benchmark: the digits CNN through Naiad's front door, its replica, LitServe, MLflow.

In one run, on this machine:

1. The digits CNN (``bench/digits_cnn.py``) is trained for a few seconds on scikit-learn's
   ``load_digits``, so its answers are real, then saved twice: with
   ``naiad.runtime.save_model`` (TorchScript + ``naiad-model.json``) and with
   ``mlflow.pytorch.save_model`` (with a float32 tensor signature, so MLflow's server
   casts the JSON to the model's dtype).
2. The replica's max delay is chosen by a short sweep: standalone replicas
   (``python -m naiad.serving.main DIR --max-batch 64 --max-delay-ms D``), one per delay,
   loaded at c=16 and c=64; the delay with the best throughput among those that keep p99
   at c=16 under the p99 target.
3. Five targets are measured with the same load generator (``bench/loadgen.py``: asyncio
   keep-alive HTTP/1.1 connections sending back to back, pre-encoded requests; each
   request one 8x8 image as ``{"inputs": [[[[...]]]]}``, shape [1, 1, 8, 8]) at
   concurrency 1, 16 and 64: requests/s, p50/p99 latency, CPU per request.

   a. Naiad through the front door, the URL users call: a live ``naiad server`` on a fresh
      home, the model registered and deployed as an endpoint of one replica (batching:
      max batch 64, the swept delay), loaded at ``POST /endpoints/NAME/invocations`` with
      the server's token. CPU is read for the server (its process tree without the
      replica) and the replica apart; rows per model call from the replica's ``/stats``.
   b. Naiad's replica direct: the same endpoint's replica, on its own port
      (``/invocations``), the same process as a.
   c. LitServe serving the same TorchScript file as its docs recommend for throughput
      (``bench/litserve_app.py``: batching 64 / 5 ms, ``fast_queue``, one worker on the
      CPU, one API server, 1 torch thread), in its own process.
   d. ``mlflow models serve -m DIR --env-manager local`` (its defaults: one uvicorn worker).
   e. For reference only (no target): Naiad's replica HTTP stack answering a constant, no
      model (``bench/fixed_answer.py``), the ceiling for what the HTTP layer allows.

   And the model in plain torch in this process (1 thread, inference mode): samples/s at
   batch 64 and at batch 1, the ceiling for the model.

   Before it is loaded, each model server (the front door too) is asked to classify test
   images one by one and must agree with the model in this process on every one.
4. Ratios with their targets, at c=16 and c=64: the front door against the replica
   direct (>= 0.7x its requests/s, p99 <= 3x its p99, >= 0.8x its rows per model call),
   against LitServe (>= 5x requests/s) and MLflow (>= 10x); and the front door's p99 at
   c=16 under 10 ms.

Fairness: everything runs on 127.0.0.1. The servers run side by side (an idle one costs
next to nothing) and are loaded in turn: each round loads every target at every
concurrency, neighbours in time, so drifting load on a shared machine hits them alike;
figures are medians of the rounds. Every server's torch gets 1 intra-op thread. The client
shares the cores with the servers: the CPU each uses (cores, and microseconds per request)
is printed beside each point.

    make bench-serving                      # the full run
    python bench/serving.py --quick         # a smoke test
"""

import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import loadgen
import psutil
from _common import Process, Row, Sections, free_port, say

import naiad
from naiad.testing.endpoints import kill_replicas
from naiad.testing.live import LiveServer

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results" / "serving.json"
ENDPOINT = "digits"
MAX_BATCH = 64
LITSERVE_TIMEOUT_MS = 5.0  # LitServe's batch_timeout
CHECK_IMAGES = 50  # test images each model server must classify as the model does
DISTINCT_BODIES = 64  # the load cycles through this many different images

# Targets (issue 15), held at c=16 and c=64; the p99 one at c=16 only.
TARGET_C = (16, 64)
VS_DIRECT_RPS = 0.7  # front door req/s >= this x replica direct
VS_DIRECT_P99 = 3.0  # front door p99 <= this x replica direct
VS_DIRECT_ROWS = 0.8  # front door rows per model call >= this x replica direct
VS_LITSERVE = 5.0  # front door req/s >= this x LitServe
VS_MLFLOW = 10.0  # front door req/s >= this x MLflow
P99_TARGET_MS = 10.0  # front door p99 at c=16; the sweep keeps the replica's under it too

# What the points are saved as, and printed as.
LABELS = {
    "front_door": "Naiad front door",
    "direct": "Naiad replica direct",
    "litserve": "LitServe",
    "mlflow": "mlflow models serve",
    "fixed": "fixed answer (reference)",
}


@dataclass(frozen=True)
class Sizes:
    seconds: float = 4.0  # measuring window per point
    warmup: float = 1.0  # sent, not counted, before each window
    rounds: int = 3  # every target at every concurrency, interleaved; medians
    concurrency: tuple[int, ...] = (1, 16, 64)
    delays_ms: tuple[float, ...] = (0.0, 1.0, 2.0, 5.0)  # swept at c=16 and c=64
    sweep_seconds: float = 2.0
    sweep_rounds: int = 2
    train_steps: int = 400
    torch_repeats: int = 2000  # batch-1 forward passes; batch-64 ones are a tenth of this


# --quick: a smoke test (1.6 minutes on this 2-core machine with a load average of 6-8).
QUICK = Sizes(
    seconds=1.0, warmup=0.3, rounds=1, delays_ms=(0.0, 2.0), sweep_seconds=1.0,
    sweep_rounds=1, train_steps=100, torch_repeats=300,
)  # fmt: skip


# -- the model ------------------------------------------------------------------------


@dataclass
class Model:
    module: Any  # the trained DigitsCNN, eval mode
    x_test: Any  # (n, 1, 8, 8) float32
    expected: list[int]  # the module's classes for x_test, in this process
    test_acc: float
    train_s: float


def train_model(steps: int) -> Model:
    import torch
    from digits_cnn import DigitsCNN, load_data, set_threads, train

    set_threads(1)
    data = load_data()
    module = DigitsCNN()
    started = time.perf_counter()
    result = train(data, steps, lambda figures, step: None, model=module)
    module.eval()
    with torch.inference_mode():
        expected = module(data.x_test).argmax(1).tolist()
    return Model(module, data.x_test, expected, result.test_acc, time.perf_counter() - started)


def bodies(model: Model) -> list[bytes]:
    """Request bodies, one test image each: ``{"inputs": [[[[...8 floats] x 8]]]}``."""
    return [
        json.dumps({"inputs": model.x_test[i : i + 1].tolist()}).encode()
        for i in range(DISTINCT_BODIES)
    ]


def save_naiad(model: Model, directory: Path) -> None:
    from naiad.runtime import save_model

    save_model(model.module, model.x_test[:1], directory)


def save_mlflow(model: Model, directory: Path) -> None:
    import mlflow.pytorch
    import torch
    from mlflow.models import infer_signature

    example = model.x_test[:1]
    with torch.inference_mode():
        output = model.module(example)
    signature = infer_signature(example.numpy(), output.numpy())
    # MLflow 3's default format is "pt2" (torch.export), which needs an input example.
    mlflow.pytorch.save_model(
        model.module,
        str(directory),
        signature=signature,
        input_example=example.numpy(),
        pip_requirements=[f"torch=={torch.__version__}", f"mlflow=={mlflow.__version__}"],
    )


def torch_ceiling(model: Model, sizes: Sizes) -> dict[str, float]:
    """Samples/s of the model in this process: batch 64 and batch 1, 1 thread, inference
    mode; and batch 1 with the JSON decode and encode an HTTP server would do around it."""
    import orjson
    import torch

    torch.set_num_threads(1)  # train_model set it (and the interop threads, once a process)
    module = model.module
    x64 = model.x_test[:MAX_BATCH].contiguous()
    x1 = model.x_test[:1].contiguous()
    body = bodies(model)[0]

    def rate(fn: Callable[[], Any], calls: int, per_call: int) -> float:
        for _ in range(max(10, calls // 10)):
            fn()
        started = time.perf_counter()
        for _ in range(calls):
            fn()
        return calls * per_call / (time.perf_counter() - started)

    def with_json() -> bytes:
        x = torch.tensor(orjson.loads(body)["inputs"], dtype=torch.float32)
        return orjson.dumps({"predictions": module(x).tolist()})

    with torch.inference_mode():
        return {
            "batch64_sps": rate(lambda: module(x64), sizes.torch_repeats // 10, MAX_BATCH),
            "batch1_sps": rate(lambda: module(x1), sizes.torch_repeats, 1),
            "batch1_json_sps": rate(with_json, sizes.torch_repeats, 1),
        }


# -- servers --------------------------------------------------------------------------


@dataclass
class Target:
    """A server started as a process of its own: how to start it and where to load it."""

    name: str
    argv: list[str]
    port: int
    env: dict[str, str] | None = None
    health: str = "/ping"
    path: str = "/invocations"  # where requests go
    start_timeout: float = 120.0
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def naiad_target(model_dir: Path, delay_ms: float, name: str, fixed: bool = False) -> Target:
    """A standalone replica (for the delay sweep), or its fixed-answer twin."""
    port = free_port()
    program = [str(BENCH / "fixed_answer.py")] if fixed else ["-m", "naiad.serving.main"]
    argv = [sys.executable, *program, str(model_dir), "--port", str(port)]
    argv += ["--max-batch", str(MAX_BATCH), "--max-delay-ms", f"{delay_ms:g}"]
    config = {"max_batch": MAX_BATCH, "max_delay_ms": delay_ms, "fixed_answer": fixed}
    return Target(name, argv, port, config=config)


def litserve_target(model_dir: Path) -> Target:
    """``bench/litserve_app.py``: LitServe as its docs recommend for throughput."""
    port = free_port()
    argv = [sys.executable, str(BENCH / "litserve_app.py"), str(model_dir), "--port", str(port)]
    argv += ["--max-batch", str(MAX_BATCH), "--batch-timeout-ms", f"{LITSERVE_TIMEOUT_MS:g}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # its worker also sets 1 intra-op thread
    config = {
        "max_batch_size": MAX_BATCH, "batch_timeout_ms": LITSERVE_TIMEOUT_MS,
        "accelerator": "cpu", "workers_per_device": 1, "num_api_servers": 1,
        "fast_queue": True, "torch_threads": 1,
    }  # fmt: skip
    return Target("litserve", argv, port, env, health="/health", path="/predict", config=config)


def mlflow_target(model_dir: Path, root: Path) -> Target:
    """``mlflow models serve`` as its docs show it, offline, tracking in a temp dir."""
    port = free_port()
    bin_dir = Path(sys.executable).parent
    argv = [str(bin_dir / "mlflow"), "models", "serve", "-m", str(model_dir)]
    argv += ["--env-manager", "local", "-p", str(port), "--host", "127.0.0.1"]
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",  # it runs `uvicorn ...`
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        # Torch with 1 intra-op thread, as Naiad's replica runs it (its --threads default):
        # with MLflow's default (one per core) its OpenMP threads spin against the client and
        # other load on two cores, and single requests took 30 ms in a trial run.
        "OMP_NUM_THREADS": "1",
    }
    config = {"workers": 1, "OMP_NUM_THREADS": 1, "format": "pt2 (MLflow 3's default)"}
    return Target("mlflow", argv, port, env, start_timeout=300.0, config=config)


def tree_cpu(pid: int, without: int | None = None) -> Callable[[], float]:
    """CPU seconds so far of a process and its descendants (a server's workers), leaving out
    ``without`` and its descendants (the replica, a child of the naiad server)."""
    root = psutil.Process(pid)

    def read() -> float:
        skip: set[int] = set()
        if without is not None:
            skip.add(without)
            with contextlib.suppress(psutil.Error):
                skip.update(p.pid for p in psutil.Process(without).children(recursive=True))
        total = 0.0
        for proc in [root, *root.children(recursive=True)]:
            if proc.pid in skip:
                continue
            try:
                times = proc.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
        return total

    return read


def check_answers(url: str, model: Model, headers: dict[str, str]) -> float:
    """The share of test images the server classifies as the model in this process does."""
    agree = 0
    with httpx.Client(timeout=60, headers=headers) as client:
        for i in range(CHECK_IMAGES):
            response = client.post(url, json={"inputs": model.x_test[i : i + 1].tolist()})
            if response.status_code != 200:
                raise RuntimeError(f"{url}: {response.status_code} {response.text[:500]}")
            predictions = response.json()["predictions"]
            row = predictions[0]
            agree += max(range(len(row)), key=row.__getitem__) == model.expected[i]
    return agree / CHECK_IMAGES


class Server:
    """A server under load: where requests go (with which headers), how to read the CPU it
    uses (by part: ``server``, or for Naiad ``naiad_server`` and ``replica``), where its batch
    counts are (a replica's ``/stats``), and the points measured."""

    def __init__(
        self,
        name: str,
        url: str,
        config: dict[str, Any],
        headers: dict[str, str] | None = None,
        stats: str | None = None,
        stop: Callable[[], None] = lambda: None,
    ) -> None:
        self.name = name
        self.url = url
        self.headers = headers or {}
        self.stats = stats
        self.cpu: dict[str, Callable[[], float]] = {}
        self.record: dict[str, Any] = {"config": config}
        self.points: dict[int, list[dict[str, Any]]] = {}
        self.stop = stop

    def check(self, model: Model) -> None:
        """Raise unless it classifies every check image as the model in this process does."""
        agreement = self.record["agreement"] = check_answers(self.url, model, self.headers)
        if agreement < 1.0:
            raise RuntimeError(
                f"{self.name} disagrees with the model on "
                f"{(1 - agreement) * CHECK_IMAGES:.0f} of {CHECK_IMAGES} images"
            )

    def batches(self) -> tuple[float, float, float] | None:
        """(batches, rows, inference seconds) so far, from the replica's stats route."""
        if self.stats is None:
            return None
        try:
            doc = httpx.get(self.stats, timeout=5).json()
            return doc["batches"], doc["rows"], doc["inference_seconds"]["sum"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return None

    def load(self, payload: list[bytes], c: int, seconds: float, warmup: float) -> None:
        marks: list[dict[str, float]] = []

        def server_cpu() -> float:  # loadgen reads it at the window's start and end
            marks.append({part: read() for part, read in self.cpu.items()})
            return sum(marks[-1].values())

        before = self.batches()
        result = loadgen.run(
            self.url, payload, c, seconds, warmup, server_cpu=server_cpu, headers=self.headers
        )
        point = result.as_dict()
        after = self.batches()
        extra = ""
        if len(self.cpu) > 1 and len(marks) == 2:
            for part in self.cpu:
                point[f"{part}_cpu"] = (marks[1][part] - marks[0][part]) / seconds
            split = (f"{p.replace('_', ' ')} {point[f'{p}_cpu']:.2f}" for p in self.cpu)
            extra += f" ({', '.join(split)})"
        if before and after and after[0] > before[0]:
            n = after[0] - before[0]
            point["rows_per_batch"] = (after[1] - before[1]) / n
            point["batch_ms"] = (after[2] - before[2]) / n * 1000
            extra += f", {point['rows_per_batch']:.1f} rows/batch, "
            extra += f"{point['batch_ms']:.2f} ms/batch"
        self.points.setdefault(c, []).append(point)
        say(
            f"  {self.name} c={c}: {result.rps:,.0f} req/s, p50 {result.p50_ms:.2f} ms, "
            f"p99 {result.p99_ms:.2f} ms, errors {result.errors + result.failures}, "
            f"CPU client {result.client_cpu:.2f} server {result.server_cpu:.2f}{extra}"
        )

    def summary(self) -> dict[str, Any]:
        """The record plus, per concurrency, the median of its rounds (errors summed)."""
        out = dict(self.record)
        for c, rounds in self.points.items():
            keys = {k for r in rounds for k, v in r.items() if isinstance(v, float)}
            point = {k: statistics.median(r[k] for r in rounds if k in r) for k in keys}
            point |= {key: sum(r[key] for r in rounds) for key in ("errors", "failures")}
            point["rounds_rps"] = [round(r["rps"], 1) for r in rounds]
            point["error_sample"] = next(
                (r["error_sample"] for r in rounds if r["error_sample"]), ""
            )
            out[f"c{c}"] = point
        return out


def launch(target: Target, process: Process, model: Model | None) -> Server:
    """Start ``target``, wait for its health route, and (unless ``model`` is None) check its
    answers."""
    url = target.base + target.path
    server = Server(target.name, url, target.config, stop=process.stop)
    server.record["start_s"] = process.start(
        target.base + target.health, timeout=target.start_timeout
    )
    assert process.proc is not None
    server.cpu = {"server": tree_cpu(process.proc.pid)}
    if model is not None:
        server.check(model)
    return server


def start_all(
    targets: list[Target], root: Path, model: Model | None, errors: dict[str, str]
) -> dict[str, Server]:
    """Start the targets side by side (nothing is under load meanwhile; a start time is that
    of a machine busy starting the others); a failure is recorded in ``errors`` and the
    others go on."""

    def start(target: Target) -> Server | None:
        process = Process(target.argv, root / f"{target.name}.log", target.env)
        try:
            server = launch(target, process, None if target.config.get("fixed_answer") else model)
        except Exception as exc:
            process.stop()
            errors[target.name] = f"{type(exc).__name__}: {exc}"
            say(f"  {target.name} FAILED: {errors[target.name]}")
            return None
        say(f"  {target.name} up in {server.record['start_s']:.1f} s")
        return server

    if not targets:
        return {}
    say(f"starting {', '.join(t.name for t in targets)} ...")
    with ThreadPoolExecutor(max_workers=len(targets)) as pool:
        started = list(pool.map(start, targets))
    return {server.name: server for server in started if server is not None}


class Endpoint:
    """``naiad server`` on a fresh home with the model registered and deployed as an endpoint
    of one replica: the URL users call (the front door) and the replica's own port, both
    into the same replica process."""

    def __init__(self, root: Path) -> None:
        self.live = LiveServer(home=root / "home")
        self.record: dict[str, Any] = {}

    def start(self, model_dir: Path, delay_ms: float, model: Model) -> list[Server]:
        live = self.live
        self.record["server_start_s"] = live.start(timeout=60)
        client = naiad.Client(url=live.url, token=live.token)
        version = client.models.register(ENDPOINT, path=model_dir).version
        started = time.perf_counter()
        handle = client.endpoints.deploy(
            ENDPOINT, model=f"{ENDPOINT}:{version}", replicas=1, max_batch=MAX_BATCH,
            max_delay_ms=delay_ms, wait=True, timeout=180,
        )  # fmt: skip
        self.record["deploy_s"] = time.perf_counter() - started
        endpoint = handle.endpoint
        replica = endpoint.variants[0].live[0]
        if replica.port is None or replica.pid is None:
            raise RuntimeError(f"endpoint {ENDPOINT} is InService without a replica's port")
        config = {"replicas": 1, "model": endpoint.variants[0].model}
        config |= endpoint.batching.model_dump()
        replica_base = f"http://127.0.0.1:{replica.port}"
        assert live.process is not None
        cpu = {
            "naiad_server": tree_cpu(live.process.pid, without=replica.pid),
            "replica": tree_cpu(replica.pid),
        }
        token = {"Authorization": f"Bearer {live.token}"}
        front_door = f"{live.url}/endpoints/{ENDPOINT}/invocations"
        servers = [
            Server("front_door", front_door, config, token, replica_base + "/stats"),
            Server("direct", replica_base + "/invocations", config, None, replica_base + "/stats"),
        ]
        for server in servers:
            server.cpu = cpu
            server.record |= self.record
            server.check(model)
        return servers

    def stop(self) -> None:
        self.live.stop()
        kill_replicas(self.live.home)


def interleave(
    servers: list[Server],
    payload: list[bytes],
    concurrency: tuple[int, ...],
    rounds: int,
    seconds: float,
    warmup: float,
    errors: dict[str, str],
) -> None:
    """Every server at every concurrency, ``rounds`` times, neighbours in time: load on
    this shared machine drifts, and a ratio of two figures taken minutes apart would
    carry the drift. A server whose load fails is dropped from the later points."""
    for i in range(rounds):
        say(f"round {i + 1}/{rounds}")
        for c in concurrency:
            for server in servers:
                if server.name in errors:
                    continue
                try:
                    server.load(payload, c, seconds, warmup)
                except Exception as exc:
                    errors[server.name] = f"{type(exc).__name__}: {exc}"
                    say(f"  {server.name} FAILED: {errors[server.name]}")


def best_delay(sweep: dict[float, dict[str, Any]]) -> float:
    """The delay with the best geometric-mean throughput at c=16 and c=64, among those
    that keep p99 at c=16 under the target (among all when none does)."""

    def score(point: dict[str, Any]) -> float:
        return math.sqrt(point["c16"]["rps"] * point["c64"]["rps"])

    ok = {d: p for d, p in sweep.items() if "c16" in p and "c64" in p}
    if not ok:
        raise RuntimeError("no delay in the sweep served its load")
    fast = {d: p for d, p in ok.items() if p["c16"]["p99_ms"] < P99_TARGET_MS}
    pool = fast or ok
    return max(pool, key=lambda d: score(pool[d]))


# -- the table ------------------------------------------------------------------------


def point(raw: dict[str, Any], name: str, c: int) -> dict[str, Any]:
    return raw.get(name, {}).get(f"c{c}", {})


def check(
    a: float | None, b: float | None, ok: Callable[[float, float], bool], held: bool
) -> bool | None:
    """Whether ``ok(a, b)`` holds, where a target is ``held``; None where none is, or where
    a side was not measured (None, NaN, or 0: no answer in the window)."""
    if not held or any(v is None or math.isnan(v) or v == 0 for v in (a, b)):
        return None
    return ok(a, b)


def cpu_note(p: dict[str, Any]) -> str:
    """CPU in cores over the window, the server's split by part where it has parts."""
    if not p:
        return ""
    parts = [k.removesuffix("_cpu") for k in ("naiad_server_cpu", "replica_cpu") if k in p]
    split = ", ".join(f"{k.replace('_', ' ')} {p[k + '_cpu']:.2f}" for k in parts)
    split = f" ({split})" if split else ""
    bad = p["errors"] + p["failures"]
    return f"CPU client {p['client_cpu']:.2f} server {p['server_cpu']:.2f}{split} cores" + (
        f"; {bad} errors" if bad else ""
    )


def rows_for(raw: dict[str, Any], sizes: Sizes) -> list[Row]:
    nan = math.nan
    rows: list[Row] = []
    for c in sizes.concurrency:
        fd, d, ls, m, f = (point(raw, k, c) for k in LABELS)
        held = c in TARGET_C
        rows += [
            Row(f"c={c}", "requests/s: front door vs replica direct", "req/s",
                fd.get("rps"), d.get("rps"), True,
                f">= {VS_DIRECT_RPS:g}x" if held else "",
                check(fd.get("rps"), d.get("rps"), lambda a, b: a >= VS_DIRECT_RPS * b, held),
                f"front door {cpu_note(fd)}; direct {cpu_note(d)}"),
            Row(f"c={c}", "p99 latency: front door vs replica direct", "ms",
                fd.get("p99_ms"), d.get("p99_ms"), False,
                f"front door <= {VS_DIRECT_P99:g}x direct" if held else "",
                check(fd.get("p99_ms"), d.get("p99_ms"), lambda a, b: a <= VS_DIRECT_P99 * b,
                      held),
                f"p50 {fd.get('p50_ms', nan):.2f} vs {d.get('p50_ms', nan):.2f} ms"),
            Row(f"c={c}", "rows per model call: front door vs replica direct", "rows",
                fd.get("rows_per_batch"), d.get("rows_per_batch"), True,
                f">= {VS_DIRECT_ROWS:g}x" if held else "",
                check(fd.get("rows_per_batch"), d.get("rows_per_batch"),
                      lambda a, b: a >= VS_DIRECT_ROWS * b, held),
                f"ms a batch on the model thread {fd.get('batch_ms', nan):.2f} vs "
                f"{d.get('batch_ms', nan):.2f}"),
            Row(f"c={c}", "requests/s: front door vs LitServe", "req/s",
                fd.get("rps"), ls.get("rps"), True, f">= {VS_LITSERVE:g}x" if held else "",
                check(fd.get("rps"), ls.get("rps"), lambda a, b: a >= VS_LITSERVE * b, held),
                f"LitServe {cpu_note(ls)}"),
            Row(f"c={c}", "p99 latency: front door vs LitServe", "ms",
                fd.get("p99_ms"), ls.get("p99_ms"), False,
                f"front door < {P99_TARGET_MS:g} ms" if c == 16 else "",
                None if c != 16 or "p99_ms" not in fd else fd["p99_ms"] < P99_TARGET_MS,
                f"LitServe p50 {ls.get('p50_ms', nan):.2f} ms"),
            Row(f"c={c}", "requests/s: front door vs mlflow models serve", "req/s",
                fd.get("rps"), m.get("rps"), True, f">= {VS_MLFLOW:g}x" if held else "",
                check(fd.get("rps"), m.get("rps"), lambda a, b: a >= VS_MLFLOW * b, held),
                f"MLflow p50 {m.get('p50_ms', nan):.2f}, p99 {m.get('p99_ms', nan):.2f} ms; "
                f"{cpu_note(m)}"),
            Row(f"c={c}", "requests/s: replica direct vs fixed answer (reference)", "req/s",
                d.get("rps"), f.get("rps"), True,
                note=f"fixed answer p50 {f.get('p50_ms', nan):.2f}, p99 "
                f"{f.get('p99_ms', nan):.2f} ms; {cpu_note(f)}" if f else ""),
        ]  # fmt: skip
    ceiling = raw.get("torch", {})
    if ceiling:
        top = max(sizes.concurrency)
        for c, key, batch in ((top, "batch64_sps", MAX_BATCH), (1, "batch1_sps", 1)):
            fd, d = point(raw, "front_door", c), point(raw, "direct", c)
            share = [f"{100 * p.get('rps', nan) / ceiling[key]:.1f}%" for p in (fd, d)]
            note = f"front door at {share[0]} of it, replica direct at {share[1]}; plain torch, "
            note += "1 thread, inference mode"
            if batch == 1:
                note += f"; with JSON decode + encode {ceiling['batch1_json_sps']:,.0f}/s"
            rows.append(
                Row("model ceiling", f"front door c={c} req/s vs torch in-process, batch {batch}",
                    "samples/s", fd.get("rps"), ceiling[key], True, note=note, comparable=False)
            )  # fmt: skip
    delay = raw.get("endpoint", {}).get("config", {}).get("max_delay_ms")
    for d, p in sorted(raw.get("sweep", {}).items()):
        if "c16" not in p:
            rows.append(Row("delay sweep", f"--max-delay-ms {d:g}", "", None, None, True,
                            note=p.get("error", "")))  # fmt: skip
            continue
        chosen = " (chosen)" if d == delay else ""
        rows.append(
            Row("delay sweep", f"--max-delay-ms {d:g}{chosen}: c=16 / c=64 req/s", "req/s",
                p["c16"]["rps"], None, True,
                note=f"c=64 {p['c64']['rps']:,.0f} req/s; p99 c=16 {p['c16']['p99_ms']:.2f} "
                f"ms, c=64 {p['c64']['p99_ms']:.2f} ms; {sizes.sweep_seconds:g} s a point")
        )  # fmt: skip
    if delay is not None:
        config = f"endpoint batching: max_batch {MAX_BATCH}, max_delay_ms {delay:g}; LitServe: "
        config += f"max_batch_size {MAX_BATCH}, batch_timeout {LITSERVE_TIMEOUT_MS:g} ms"
        rows.append(Row("config", config, "", None, None, True))
    return rows


def points_table(raw: dict[str, Any], sizes: Sizes) -> str:
    """Every target at every concurrency: the plain figures, CPU per request (for Naiad,
    the naiad server's and the replica's apart), and (from the replica's /stats) rows per
    model call and the milliseconds each batch took from its hand-off to the model thread
    to its result."""
    head = ["target", "c", "req/s", "p50 ms", "p99 ms", "errors", "CPU client / server",
            "CPU us/req client / server", "of which naiad server / replica", "rows/batch",
            "ms/batch"]  # fmt: skip
    lines = []
    for key, label in LABELS.items():
        for c in sizes.concurrency:
            p = point(raw, key, c)
            if not p:
                continue

            def per(k: str, p: dict[str, Any] = p) -> str:
                return f"{1e6 * p[k] / p['rps']:.0f}" if p["rps"] and k in p else "-"

            lines.append([
                label, str(c), f"{p['rps']:,.0f}", f"{p['p50_ms']:.2f}", f"{p['p99_ms']:.2f}",
                str(p["errors"] + p["failures"]), f"{p['client_cpu']:.2f} / {p['server_cpu']:.2f}",
                f"{per('client_cpu')} / {per('server_cpu')}",
                f"{per('naiad_server_cpu')} / {per('replica_cpu')}" if "replica_cpu" in p else "-",
                f"{p['rows_per_batch']:.1f}" if "rows_per_batch" in p else "-",
                f"{p['batch_ms']:.2f}" if "batch_ms" in p else "-",
            ])  # fmt: skip
    ceiling = raw.get("torch", {})
    if ceiling:
        lines.append(
            [f"torch in-process, batch {MAX_BATCH}", "-", f"{ceiling['batch64_sps']:,.0f}"]
        )
        lines.append(["torch in-process, batch 1", "-", f"{ceiling['batch1_sps']:,.0f}"])
    lines = [line + ["-"] * (len(head) - len(line)) for line in lines]
    widths = [max(len(line[i]) for line in [head, *lines]) for i in range(len(head))]

    def fmt(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([fmt(head), rule, *(fmt(line) for line in lines)])


# -- main -----------------------------------------------------------------------------


def sweep_delay(
    naiad_dir: Path,
    model: Model,
    payload: list[bytes],
    root: Path,
    sizes: Sizes,
    raw: dict[str, Any],
    errors: dict[str, str],
) -> float:
    """The max delay for the endpoint's batching: standalone replicas, one per delay in
    ``sizes.delays_ms``, loaded in turn at c=16 and c=64 (the first delay when one is given
    or none served its load)."""
    delay = sizes.delays_ms[0]
    if len(sizes.delays_ms) < 2:
        return delay
    by_delay = {d: naiad_target(naiad_dir, d, name=f"naiad-d{d:g}") for d in sizes.delays_ms}
    sweep = start_all(list(by_delay.values()), root, model, errors)
    try:
        say(f"delay sweep over --max-delay-ms {', '.join(f'{d:g}' for d in by_delay)}")
        interleave(list(sweep.values()), payload, (16, 64), sizes.sweep_rounds,
                   sizes.sweep_seconds, sizes.warmup, errors)  # fmt: skip
        raw["sweep"] = {d: sweep[t.name].summary() for d, t in by_delay.items()
                        if t.name in sweep}  # fmt: skip
        delay = best_delay(raw["sweep"])
    except RuntimeError as exc:
        errors["sweep"] = str(exc)
    finally:
        for server in sweep.values():
            server.stop()
    return delay


def measure_servers(
    model: Model,
    payload: list[bytes],
    naiad_dir: Path | None,
    mlflow_dir: Path | None,
    root: Path,
    sizes: Sizes,
    raw: dict[str, Any],
    errors: dict[str, str],
) -> None:
    """The delay sweep, then the front door, the replica direct, LitServe, MLflow and the
    fixed answer, interleaved; into ``raw``."""
    endpoint = Endpoint(root)
    started: list[Server] = []
    try:
        measured: list[Server] = []
        if naiad_dir is not None:
            delay = sweep_delay(naiad_dir, model, payload, root, sizes, raw, errors)
            say(f"naiad server, endpoint {ENDPOINT!r}: max batch {MAX_BATCH}, delay {delay:g} ms")
            try:
                measured += endpoint.start(naiad_dir, delay, model)
                raw["endpoint"] = measured[0].record
                say(f"  deployed in {endpoint.record['deploy_s']:.1f} s")
            except Exception as exc:
                errors["endpoint"] = f"{type(exc).__name__}: {exc}"
                say(f"  endpoint FAILED: {errors['endpoint']}")
        others: list[Target] = []
        if naiad_dir is not None:  # LitServe serves the same TorchScript file
            others.append(litserve_target(naiad_dir))
        if mlflow_dir is not None:
            others.append(mlflow_target(mlflow_dir, root))
        if naiad_dir is not None:
            others.append(naiad_target(naiad_dir, 0.0, name="fixed", fixed=True))
        new = start_all(others, root, model, errors)
        started += new.values()
        measured += new.values()
        interleave(measured, payload, sizes.concurrency, sizes.rounds, sizes.seconds, sizes.warmup,
                   errors)  # fmt: skip
        for server in measured:
            raw[server.name] = server.summary()
    finally:
        for server in started:
            server.stop()
        endpoint.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short windows, one round: smoke test")
    parser.add_argument("--seconds", type=float, help="the measuring window per point")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (medians are reported)")
    parser.add_argument(
        "--delays", type=float, nargs="+", help="--max-delay-ms values to sweep for Naiad"
    )
    parser.add_argument("--json", type=Path, default=RESULTS, help="default: %(default)s")
    args = parser.parse_args()
    sizes = QUICK if args.quick else Sizes()
    overrides = {"seconds": args.seconds, "rounds": args.rounds}
    overrides["delays_ms"] = tuple(args.delays) if args.delays else None
    sizes = Sizes(**(asdict(sizes) | {k: v for k, v in overrides.items() if v}))

    warnings.filterwarnings("ignore")
    sections = Sections()
    raw, errors, load, measure = sections.raw, sections.errors, sections.load, sections.measure

    with tempfile.TemporaryDirectory(prefix="naiad-bench-serving-") as tmp:
        root = Path(tmp)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
        say(f"training the digits CNN ({sizes.train_steps} steps) ...")
        model = train_model(sizes.train_steps)
        say(f"  {model.train_s:.1f} s, test accuracy {model.test_acc:.3f}")
        raw["model"] = {"train_s": model.train_s, "test_acc": model.test_acc}
        payload = bodies(model)
        naiad_dir, mlflow_dir = root / "naiad-model", root / "mlflow-model"
        measure("save naiad", save_naiad, model, naiad_dir)
        measure("save mlflow", save_mlflow, model, mlflow_dir)
        measure("torch", torch_ceiling, model, sizes)
        measure_servers(
            model, payload,
            None if "save naiad" in errors else naiad_dir,
            None if "save mlflow" in errors else mlflow_dir,
            root, sizes, raw, errors,
        )  # fmt: skip
        load["servers"] = os.getloadavg()[0]

    rows = rows_for(raw, sizes)
    for name, error in errors.items():
        rows.append(Row(name, f"{name} FAILED", "", None, None, True, note=error))
    print(points_table(raw, sizes))
    print()
    sections.report(rows, "baseline", args.json, sizes, _versions)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    import mlflow
    import torch

    try:  # its version only: LitServe is imported by bench/litserve_app.py alone
        litserve = version("litserve")
    except PackageNotFoundError:
        litserve = "not installed"
    return {"torch": torch.__version__, "mlflow": mlflow.__version__, "litserve": litserve}


if __name__ == "__main__":
    main()
