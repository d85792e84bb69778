"""ONNX Runtime against torch: the same two models served by Naiad, through the front door.

In one run, on this machine:

1. The digits CNN (``bench/digits_cnn.py``), trained for a few seconds on scikit-learn's
   ``load_digits``, and a tabular MLP (64 features -> 256 -> 256 -> 2, trained on
   generated rows) are saved as TorchScript and registered on a live server (``naiad
   server`` on a free loopback port, a fresh home; ``naiad.testing.live``). Each is
   exported by the registry's own export job (``client.models.export``), so each model
   has a torch version and an ONNX version.
2. Four endpoints of one replica each (max batch 64, 5 ms) serve them; each must answer
   its model's test rows as the model does in this process before it is measured.
3. The load generator (``bench/loadgen.py``) sends through the URL users call,
   ``/endpoints/NAME/invocations`` with the token: one row per request as JSON at c=1
   (latency) and c=16 (dynamic batching), and 64 rows per request as ``.npy`` at c=4.
   Each round loads every endpoint at every load, neighbours in time, so a drifting load
   on a shared machine hits torch and ONNX alike; figures are medians of the rounds. The
   replica's ``/stats`` gives the rows per batch and the model time per batch of each
   point.
4. The models alone in this process, loaded as a replica loads them (1 intra-op thread,
   torch on the CPU kernels the replica would choose):
   CPU microseconds per call at 1 and 64 rows (thread CPU time, which other work on the
   machine does not inflate).

Printed as a table; the record goes to ``bench/results/onnx.json``. (This file's name
shadows the ``onnx`` package in its own process only; nothing here imports that package:
the export runs in the registry's job.)

    python bench/onnx.py [--quick] [--rounds 3] [--seconds 4]
"""

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import loadgen
import numpy as np
from _common import machine, say

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results" / "onnx.json"
MAX_BATCH = 64
MAX_DELAY_MS = 5.0
FEATURES = 64
JSON, NPY = "application/json", "application/x-npy"


@dataclass(frozen=True)
class Sizes:
    seconds: float = 4.0  # measuring window per point
    warmup: float = 1.0  # sent, not counted, before each window
    rounds: int = 3  # every endpoint at every load, interleaved; medians
    train_steps: int = 300
    model_calls: int = 2000  # per point of the model-alone figures (a tenth at 64 rows)


QUICK = Sizes(seconds=1.0, warmup=0.3, rounds=1, train_steps=50, model_calls=200)


@dataclass(frozen=True)
class Load:
    name: str
    rows: int  # rows per request
    concurrency: int
    content_type: str


LOADS = (
    Load("1 row, c=1", 1, 1, JSON),
    Load("1 row, c=16", 1, 16, JSON),
    Load("64 rows, c=4", 64, 4, NPY),
)


# -- the models -----------------------------------------------------------------------


@dataclass
class Trained:
    name: str
    module: Any  # eval mode
    x_test: np.ndarray
    accuracy: float
    alone_us: dict[str, float] = field(default_factory=dict)  # the model-alone figures


def digits_cnn(steps: int) -> Trained:
    from digits_cnn import DigitsCNN, load_data, train

    data = load_data()
    module = DigitsCNN()
    result = train(data, steps, lambda figures, step: None, model=module)
    return Trained("digits-cnn", module.eval(), data.x_test.numpy(), result.test_acc)


def tabular_mlp(steps: int) -> Trained:
    """64 generated features, two classes by a hidden linear rule with noise."""
    import torch
    from torch import nn

    rng = np.random.default_rng(0)
    x = rng.normal(size=(6000, FEATURES)).astype(np.float32)
    y = (x @ rng.normal(size=FEATURES) + rng.normal(scale=2.0, size=len(x)) > 0).astype(np.int64)
    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Linear(FEATURES, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 2)
    )
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    x_train, y_train = torch.from_numpy(x[:5000]), torch.from_numpy(y[:5000])
    for step in range(steps):
        at = step * 64 % (5000 - 64)
        optimizer.zero_grad()
        nn.functional.cross_entropy(module(x_train[at : at + 64]), y_train[at : at + 64]).backward()
        optimizer.step()
    module.eval()
    with torch.inference_mode():
        predicted = module(torch.from_numpy(x[5000:])).argmax(1).numpy()
    return Trained("tabular-mlp", module, x[5000:], float(np.mean(predicted == y[5000:])))


def answers(module: Any, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return module(torch.from_numpy(x)).numpy()


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def bodies(model: Trained, load: Load) -> list[bytes]:
    """Distinct request bodies cycling through the test rows."""
    out = []
    for i in range(16):
        rows = model.x_test[(i * load.rows) % (len(model.x_test) - load.rows) :][: load.rows]
        out.append(
            npy(rows)
            if load.content_type == NPY
            else json.dumps({"inputs": rows.tolist()}).encode()
        )
    return out


def model_alone(directories: dict[str, Path], x: np.ndarray, sizes: Sizes) -> dict[str, float]:
    """CPU microseconds per call of each runtime at 1 and 64 rows, loaded as a replica
    loads it (1 intra-op thread, so every operator runs on the calling thread) and called
    in inference mode; the median of 5 repeats, the runtimes interleaved. Thread CPU time,
    not wall time: other work on a shared machine does not inflate it."""
    import torch

    from naiad.serving.loader import choose_cpu_kernels, load_model, model_thread_context

    times: dict[str, list[float]] = {}
    with model_thread_context(1):
        loaded = {runtime: load_model(d, threads=1) for runtime, d in directories.items()}
        kernels = choose_cpu_kernels(loaded["torch"], MAX_BATCH)  # as the torch replica does
        for rows in (1, MAX_BATCH):
            batch = torch.from_numpy(np.ascontiguousarray(x[:rows]))
            calls = sizes.model_calls if rows == 1 else max(10, sizes.model_calls // 10)
            for _ in range(5):
                for runtime, model in loaded.items():
                    for _ in range(max(5, calls // 20)):
                        model(batch)
                    started = time.thread_time()
                    for _ in range(calls):
                        model(batch)
                    per_call = (time.thread_time() - started) / calls * 1e6
                    times.setdefault(f"{runtime} {rows} rows", []).append(per_call)
    figures = {key: statistics.median(values) for key, values in times.items()}
    say(f"torch on {kernels} CPU kernels: {figures}")
    return figures


# -- through the front door -----------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    model: str  # digits-cnn, tabular-mlp
    runtime: str  # torch, onnx
    url: str
    replica: str  # the replica's own base URL, for /stats


def batch_figures(replica: str) -> tuple[int, int, float]:
    doc = httpx.get(f"{replica}/stats", timeout=5).json()
    return doc["batches"], doc["rows"], doc["inference_seconds"]["sum"]


def measure(endpoint: Endpoint, load: Load, model: Trained, token: str, sizes: Sizes) -> dict:
    before = batch_figures(endpoint.replica)
    result = loadgen.run(
        endpoint.url,
        bodies(model, load),
        load.concurrency,
        sizes.seconds,
        sizes.warmup,
        content_type=load.content_type,
        headers={"Authorization": f"Bearer {token}", "Accept": load.content_type},
    )
    batches, rows, seconds = (
        a - b for a, b in zip(batch_figures(endpoint.replica), before, strict=True)
    )
    return result.as_dict() | {
        "rows_per_s": result.rps * load.rows,
        "rows_per_batch": rows / batches if batches else 0.0,
        "model_ms_per_batch": seconds / batches * 1000 if batches else 0.0,
    }


def check(client: Any, name: str, model: Trained) -> None:
    """The endpoint answers the first 64 test rows as the model in this process does."""
    got = client.endpoints.predict(name, model.x_test[:64])
    np.testing.assert_allclose(got, answers(model.module, model.x_test[:64]), rtol=1e-4, atol=1e-4)
    say(f"{name} answers as the model does")


def serve_both(
    client: Any, server: Any, model: Trained, root: Path, sizes: Sizes
) -> list[Endpoint]:
    """Register ``model``, export it with the registry's job, time both alone, and deploy
    an endpoint for each; returns the two endpoints."""
    import torch

    from naiad.core.home import HomeLayout
    from naiad.runtime import save_model

    directory = save_model(model.module, torch.from_numpy(model.x_test[:1]), root / model.name)
    client.models.register(model.name, path=directory)
    exported = client.models.export(f"{model.name}:1", evaluate=False)
    say(f"{model.name}: exported to ONNX as {model.name}:{exported.version}")
    onnx_dir = HomeLayout(server.home).artifacts / exported.artifact_uri
    model.alone_us = model_alone({"torch": directory, "onnx": onnx_dir}, model.x_test, sizes)
    endpoints = []
    for runtime, version in (("torch", 1), ("onnx", exported.version)):
        name = f"{model.name}-{runtime}"
        handle = client.endpoints.deploy(
            name,
            model=f"{model.name}:{version}",
            max_batch=MAX_BATCH,
            max_delay_ms=MAX_DELAY_MS,
            wait=True,
            timeout=120,
        )
        check(client, name, model)
        port = handle.refresh().variants[0].live[0].port
        url = f"{server.url}/endpoints/{name}/invocations"
        endpoints.append(Endpoint(model.name, runtime, url, f"http://127.0.0.1:{port}"))
    return endpoints


def run(sizes: Sizes) -> dict[str, Any]:
    from digits_cnn import set_threads

    import naiad
    from naiad.testing.endpoints import kill_replicas
    from naiad.testing.live import LiveServer

    set_threads(1)
    say("training the digits CNN and the tabular MLP")
    models = {m.name: m for m in (digits_cnn(sizes.train_steps), tabular_mlp(sizes.train_steps))}
    points: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="naiad-bench-onnx-") as tmp:
        server = LiveServer(home=Path(tmp) / "home")
        server.start()
        try:
            client = naiad.Client(url=server.url, token=server.token)
            endpoints = [
                e for m in models.values() for e in serve_both(client, server, m, Path(tmp), sizes)
            ]
            for i in range(sizes.rounds):
                for load in LOADS:
                    for endpoint in endpoints:
                        key = f"{endpoint.model}|{endpoint.runtime}|{load.name}"
                        point = measure(endpoint, load, models[endpoint.model], server.token, sizes)
                        points.setdefault(key, []).append(point)
                        say(
                            f"round {i + 1} {key}: {point['rps']:,.0f} req/s, "
                            f"p50 {point['p50_ms']:.2f} ms, p99 {point['p99_ms']:.2f} ms, "
                            f"{point['rows_per_batch']:.1f} rows/batch, "
                            f"errors {point['errors'] + point['failures']}"
                        )
        finally:
            server.stop()
            kill_replicas(server.home)
    return {
        "accuracy": {name: m.accuracy for name, m in models.items()},
        "alone_us": {name: m.alone_us for name, m in models.items()},
        "points": points,
    }


# -- the report -----------------------------------------------------------------------


def med(points: list[dict], key: str) -> float:
    return statistics.median(p[key] for p in points)


def rate(points: list[dict]) -> str:
    """Median requests/s with the rounds' range."""
    rps = [p["rps"] for p in points]
    return f"{statistics.median(rps):,.0f} ({min(rps):,.0f}-{max(rps):,.0f})"


def front_door_table(points: dict[str, list[dict]]) -> str:
    """One line per model and load; ONNX / torch is the median of each round's ratio (the
    two measured back to back), which a drifting machine load moves less than the rates."""
    head = (
        "| model | load | torch req/s | ONNX req/s | ONNX / torch | torch p50 / p99 ms "
        "| ONNX p50 / p99 ms | rows per batch (torch / ONNX) | model ms per batch (torch / ONNX) |"
    )
    lines = [head, "|" + "---|" * 9]
    for model in ("digits-cnn", "tabular-mlp"):
        for load in LOADS:
            t, o = (points[f"{model}|{runtime}|{load.name}"] for runtime in ("torch", "onnx"))
            ratio = statistics.median(b["rps"] / a["rps"] for a, b in zip(t, o, strict=True))
            lines.append(
                f"| {model} | {load.name} | {rate(t)} | {rate(o)} | {ratio:.2f}x "
                f"| {med(t, 'p50_ms'):.2f} / {med(t, 'p99_ms'):.2f} "
                f"| {med(o, 'p50_ms'):.2f} / {med(o, 'p99_ms'):.2f} "
                f"| {med(t, 'rows_per_batch'):.1f} / {med(o, 'rows_per_batch'):.1f} "
                f"| {med(t, 'model_ms_per_batch'):.3f} / {med(o, 'model_ms_per_batch'):.3f} |"
            )
    return "\n".join(lines)


def alone_table(alone: dict[str, dict[str, float]]) -> str:
    lines = [
        "| model | rows | torch CPU us/call | ONNX Runtime CPU us/call | torch / ONNX |",
        "|---|---|---|---|---|",
    ]
    for model, figures in alone.items():
        for rows in (1, MAX_BATCH):
            t, o = figures[f"torch {rows} rows"], figures[f"onnx {rows} rows"]
            lines.append(f"| {model} | {rows} | {t:,.1f} | {o:,.1f} | {t / o:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (medians)")
    parser.add_argument("--seconds", type=float, help="measuring window per point")
    parser.add_argument("--json", type=Path, default=RESULTS, help="where the record goes")
    args = parser.parse_args()
    sizes = QUICK if args.quick else Sizes()
    changes = {k: v for k, v in (("rounds", args.rounds), ("seconds", args.seconds)) if v}
    sizes = Sizes(**(asdict(sizes) | changes))
    raw = run(sizes)
    print("Through the front door (median of rounds):\n")
    print(front_door_table(raw["points"]))
    print("\nThe model alone, in this process:\n")
    print(alone_table(raw["alone_us"]))
    import onnxruntime
    import torch

    meta = machine(torch=torch.__version__, onnxruntime=onnxruntime.__version__)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"meta": meta, "sizes": asdict(sizes), **raw}, indent=2))
    say(f"wrote {args.json}")
    failed = sum(p["errors"] + p["failures"] for ps in raw["points"].values() for p in ps)
    if failed:
        say(f"{failed} requests failed; see the record")
        sys.exit(1)


if __name__ == "__main__":
    main()
