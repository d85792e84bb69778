"""Quantization: float32 against the dynamic, static and QAT int8 copies, served by Naiad.

In one run, on this machine, on a live server (``naiad server`` on a free loopback port,
a fresh home; ``naiad.testing.live``):

1. The examples train as Naiad jobs: ``examples/digits`` (the digits CNN, one process,
   12 epochs) and ``examples/tabular`` (the dense network on its generated CSV, 40
   epochs), the tabular one twice: as it is (hidden 64) and with ``hidden=256``, to show
   where its int8 copy starts to be 3x smaller. Each model is registered from its job and
   evaluated on its test split by the registry's evaluation job.
2. The registry's quantization job (``client.models.quantize``) makes three copies of
   each: dynamic, static (calibrated on the training split) and QAT (fine-tuned on the
   training split with the job's defaults: 3 epochs, Adam at 1e-4). Each copy is the next
   version, evaluated automatically on its parent's test split: the accuracies are those
   evaluation jobs', the bytes the registry's ``size_bytes`` (model file + manifest).
3. Each model's four versions are deployed as endpoints of one replica each (max batch 64,
   5 ms); every endpoint must answer 64 test rows as its version does loaded in this
   process. ``bench/loadgen.py`` sends through the URL users call,
   ``/endpoints/NAME/invocations`` with the token (``bench/onnx.py``'s ``measure``): one
   row per request as JSON at c=1 (single-request latency) and 64 rows per request as
   ``.npy`` at c=4 (batched throughput). Each round loads every endpoint at every load
   back to back; figures are medians of the rounds.
4. The models alone, loaded as a replica loads them (1 intra-op thread, the CPU kernels
   its replica would choose): CPU microseconds per call at 1 and 64 rows.

Printed as tables; the record goes to ``bench/results/quantization.json``.

    python bench/quantization.py [--quick] [--rounds 3] [--seconds 4]
"""

import argparse
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from _common import machine, say

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
EXAMPLES = ROOT / "examples"
RESULTS = BENCH / "results" / "quantization.json"
METHODS = ("dynamic", "static", "qat")
VARIANTS = ("fp32", *METHODS)


def _bench_onnx() -> Any:
    """``bench/onnx.py`` under another name (its own would shadow the onnx package)."""
    spec = importlib.util.spec_from_file_location("bench_onnx", BENCH / "onnx.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


front = _bench_onnx()
med = front.med  # the median of one figure over rounds, as bench/onnx.py reports it
LOADS = (
    front.Load("1 row, c=1", 1, 1, front.JSON),
    front.Load("64 rows, c=4", 64, 4, front.NPY),
)


@dataclass(frozen=True)
class Sizes:
    seconds: float = 4.0  # measuring window per point
    warmup: float = 1.0  # sent, not counted, before each window
    rounds: int = 3  # every endpoint at every load, interleaved; medians
    digits_epochs: int = 12
    tabular_epochs: int = 40
    model_calls: int = 2000  # per point of the model-alone figures (a tenth at 64 rows)


QUICK = Sizes(
    seconds=1.0, warmup=0.3, rounds=1, digits_epochs=4, tabular_epochs=10, model_calls=200
)


@dataclass(frozen=True)
class Example:
    name: str  # the model's name in the registry
    source: str  # folder under examples/
    hyperparameters: dict[str, Any]
    data: dict[str, Path]  # split -> channel folder
    file: str  # the test split's file, for the rows sent to the endpoints


@dataclass
class Measured:
    example: Example
    versions: dict[str, int] = field(default_factory=dict)  # variant -> version number
    accuracy: dict[str, float] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)
    test_rows: int = 0
    alone_us: dict[str, float] = field(default_factory=dict)
    quantize_seconds: dict[str, float] = field(default_factory=dict)


def examples(root: Path, sizes: Sizes) -> list[Example]:
    sys.path.insert(0, str(EXAMPLES / "digits"))
    from prepare import prepare  # examples/digits/prepare.py

    sys.path.insert(0, str(EXAMPLES / "tabular"))
    from make_data import make  # examples/tabular/make_data.py

    digits, tabular = prepare(root / "digits"), make(root / "tabular")
    tab = {"epochs": sizes.tabular_epochs}
    return [
        Example("digits-cnn", "digits", {"epochs": sizes.digits_epochs}, digits, "digits.npz"),
        Example("tabular", "tabular", tab, tabular, "test.csv"),
        Example("tabular-256", "tabular", tab | {"hidden": 256}, tabular, "test.csv"),
    ]


def test_rows(example: Example) -> np.ndarray:
    """The rows a client sends: the test split's inputs, as the endpoint takes them."""
    from naiad.runtime.datasets import load_labelled

    x, _ = load_labelled(example.data["test"])
    return np.ascontiguousarray(x, dtype=np.float32)


def train_and_quantize(client: Any, example: Example) -> Measured:
    """Train the example as a job, register and evaluate it, then the three int8 copies."""
    data = example.data
    job = client.training_jobs.create(
        name=f"train-{example.name}",
        entrypoint="train.py",
        source_dir=EXAMPLES / example.source,
        hyperparameters=example.hyperparameters,
        inputs={"train": str(data["train"]), "validation": str(data["validation"])},
    )
    ended = job.wait(timeout=900)
    if ended.status != "Completed":
        raise RuntimeError("".join(job.logs())[-3000:])
    fp32 = client.models.register(example.name, job=ended.name)
    evaluation = client.models.evaluate(f"{example.name}:{fp32.version}", str(data["test"]))
    measured = Measured(example, test_rows=len(test_rows(example)))
    measured.versions["fp32"] = fp32.version
    for method in METHODS:
        started = time.perf_counter()
        copy = client.models.quantize(
            f"{example.name}:{fp32.version}",
            method=method,
            data=None if method == "dynamic" else data["train"],
        )
        measured.quantize_seconds[method] = time.perf_counter() - started
        measured.versions[method] = copy.version
        say(f"{example.name}: {method} -> version {copy.version} ({copy.quantization})")
    for variant, version in measured.versions.items():
        ref = f"{example.name}:{version}"
        latest = client.evaluations.list(ref)[-1]
        assert latest.input == evaluation.input, (ref, latest.input)
        measured.accuracy[variant] = latest.metrics["accuracy"]
        measured.bytes[variant] = client.models.get(ref).size_bytes
    say(f"{example.name}: accuracy {measured.accuracy}, bytes {measured.bytes}")
    return measured


def directory(server: Any, client: Any, ref: str) -> Path:
    from naiad.core.home import HomeLayout

    return HomeLayout(server.home).artifacts / client.models.get(ref).artifact_uri


def model_alone(dirs: dict[str, Path], x: np.ndarray, sizes: Sizes) -> dict[str, float]:
    """CPU microseconds per call at 1 and 64 rows of each variant, loaded as a replica
    loads it (1 intra-op thread, its CPU kernels chosen as the replica chooses them); the
    median of 5 repeats, variants interleaved, in thread CPU time."""
    import torch

    from naiad.serving.loader import choose_cpu_kernels, load_model, model_thread_context

    times: dict[str, list[float]] = {}
    with model_thread_context(1):
        loaded = {variant: load_model(d, threads=1) for variant, d in dirs.items()}
        for rows in (1, front.MAX_BATCH):
            batch = torch.from_numpy(np.ascontiguousarray(x[:rows]))
            calls = sizes.model_calls if rows == 1 else max(10, sizes.model_calls // 10)
            for _ in range(5):
                for variant, model in loaded.items():
                    choose_cpu_kernels(model, front.MAX_BATCH)  # what its own replica does
                    for _ in range(max(5, calls // 20)):
                        model(batch)
                    started = time.thread_time()
                    for _ in range(calls):
                        model(batch)
                    per_call = (time.thread_time() - started) / calls * 1e6
                    times.setdefault(f"{variant} {rows} rows", []).append(per_call)
    return {key: statistics.median(values) for key, values in times.items()}


def serve(client: Any, server: Any, measured: Measured, x: np.ndarray) -> list[Any]:
    """An endpoint of one replica per variant, each checked against its version loaded here."""
    import torch

    from naiad.serving.loader import load_model

    endpoints = []
    for variant, version in measured.versions.items():
        name, ref = f"{measured.example.name}-{variant}", f"{measured.example.name}:{version}"
        handle = client.endpoints.deploy(
            name,
            model=ref,
            max_batch=front.MAX_BATCH,
            max_delay_ms=front.MAX_DELAY_MS,
            wait=True,
            timeout=180,
        )
        want = load_model(directory(server, client, ref))(torch.from_numpy(x[:64])).numpy()
        got = client.endpoints.predict(name, x[:64])
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3)
        port = handle.refresh().variants[0].live[0].port
        url = f"{server.url}/endpoints/{name}/invocations"
        endpoints.append(
            front.Endpoint(measured.example.name, variant, url, f"http://127.0.0.1:{port}")
        )
    say(f"{measured.example.name}: four endpoints answer as their versions do")
    return endpoints


def run(sizes: Sizes) -> dict[str, Any]:
    from digits_cnn import set_threads

    import naiad
    from naiad.testing.endpoints import kill_replicas
    from naiad.testing.live import LiveServer

    set_threads(1)
    points: dict[str, list[dict]] = {}
    results: list[Measured] = []
    with tempfile.TemporaryDirectory(prefix="naiad-bench-quantization-") as tmp:
        server = LiveServer(home=Path(tmp) / "home")
        server.start()
        try:
            client = naiad.Client(url=server.url, token=server.token)
            for example in examples(Path(tmp) / "data", sizes):
                measured = train_and_quantize(client, example)
                results.append(measured)
                x = test_rows(example)
                dirs = {
                    v: directory(server, client, f"{example.name}:{n}")
                    for v, n in measured.versions.items()
                }
                measured.alone_us = model_alone(dirs, x, sizes)
                say(f"{example.name} alone: {measured.alone_us}")
                endpoints = serve(client, server, measured, x)
                model = front.Trained(example.name, None, x, measured.accuracy["fp32"])
                for i in range(sizes.rounds):
                    for load in LOADS:
                        for endpoint in endpoints:
                            key = f"{endpoint.model}|{endpoint.runtime}|{load.name}"
                            point = front.measure(endpoint, load, model, server.token, sizes)
                            points.setdefault(key, []).append(point)
                            say(
                                f"round {i + 1} {key}: {point['rps']:,.0f} req/s, "
                                f"p50 {point['p50_ms']:.2f} ms, p99 {point['p99_ms']:.2f} ms, "
                                f"errors {point['errors'] + point['failures']}"
                            )
                for endpoint in endpoints:
                    client.endpoints.delete(f"{endpoint.model}-{endpoint.runtime}", wait=True)
        finally:
            server.stop()
            kill_replicas(server.home)
    return {
        "models": {
            m.example.name: {
                "hyperparameters": m.example.hyperparameters,
                "versions": m.versions,
                "accuracy": m.accuracy,
                "test_rows": m.test_rows,
                "bytes": m.bytes,
                "alone_us": m.alone_us,
                "quantize_seconds": m.quantize_seconds,
            }
            for m in results
        },
        "points": points,
    }


# -- the report -----------------------------------------------------------------------


def table(raw: dict[str, Any]) -> str:
    head = (
        "| model | variant | test accuracy | bytes | fp32 / bytes | 1 row c=1: p50 / p99 ms "
        "| 64 rows c=4: rows/s | model alone, CPU us at 1 / 64 rows |"
    )
    lines = [head, "|" + "---|" * 8]
    for name, m in raw["models"].items():
        for variant in VARIANTS:
            single = raw["points"][f"{name}|{variant}|{LOADS[0].name}"]
            batched = raw["points"][f"{name}|{variant}|{LOADS[1].name}"]
            accuracy = m["accuracy"][variant]
            delta = (accuracy - m["accuracy"]["fp32"]) * 100
            shown = f"{accuracy:.4f}" + (f" ({delta:+.2f} pt)" if variant != "fp32" else "")
            ratio = m["bytes"]["fp32"] / m["bytes"][variant]
            alone = m["alone_us"]
            lines.append(
                f"| {name} | {variant} | {shown} | {m['bytes'][variant]:,} | {ratio:.2f}x "
                f"| {med(single, 'p50_ms'):.2f} / {med(single, 'p99_ms'):.2f} "
                f"| {med(batched, 'rows_per_s'):,.0f} "
                f"| {alone[f'{variant} 1 rows']:,.1f} / {alone[f'{variant} 64 rows']:,.1f} |"
            )
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
    print(table(raw))
    import torch

    meta = machine(torch=torch.__version__, engine=torch.backends.quantized.engine)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"meta": meta, "sizes": asdict(sizes), **raw}, indent=2))
    say(f"wrote {args.json}")
    failed = sum(p["errors"] + p["failures"] for ps in raw["points"].values() for p in ps)
    if failed:
        say(f"{failed} requests failed; see the record")
        sys.exit(1)


if __name__ == "__main__":
    main()
