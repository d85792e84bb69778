"""Serving benchmark: Naiad's endpoint replica against `mlflow models serve`, same model.

In one run, on this machine:

1. The digits CNN (``bench/digits_cnn.py``) is trained for a few seconds on scikit-learn's
   ``load_digits``, so its answers are real, then saved twice: with
   ``naiad.runtime.save_model`` (TorchScript + ``naiad-model.json``) and with
   ``mlflow.pytorch.save_model`` (with a float32 tensor signature, so MLflow's server
   casts the JSON to the model's dtype).
2. Four things are measured with the same load generator (``bench/loadgen.py``: asyncio
   keep-alive HTTP/1.1 connections sending back to back, pre-encoded requests; each
   request one 8x8 image as ``{"inputs": [[[[...]]]]}``, shape [1, 1, 8, 8]) at
   concurrency 1, 16 and 64: requests/s and p50/p99 latency.

   a. Naiad's endpoint replica, ``python -m naiad.serving.main DIR --max-batch 64
      --max-delay-ms D``; D is chosen by a short sweep (the best throughput at c=16 and
      c=64 among the delays that keep p99 at c=16 under 25 ms).
   b. ``mlflow models serve -m DIR --env-manager local`` (its defaults: one uvicorn worker).
   c. Naiad's same HTTP stack answering a constant, no model (``bench/fixed_answer.py``:
      the replica's process with its app's model call left out), the ceiling for what the
      HTTP layer allows per request.
   d. The model in plain torch in this process (1 thread, inference mode): samples/s at
      batch 64 and at batch 1, the ceiling for the model.

   Before it is loaded, each model server is asked to classify test images one by one and
   must agree with the model in this process on every one.
3. Ratios with their targets: Naiad / MLflow requests/s at c=16 and c=64 (>= 5x), Naiad's
   p99 at c=16 (< 25 ms), Naiad / fixed-answer requests/s (>= 0.70).

Fairness: everything runs on 127.0.0.1. The servers of a comparison run side by side (an
idle one costs nothing) and are loaded in turn: each round loads every server at every
concurrency, neighbours in time, so drifting load on a shared machine hits them alike;
figures are medians of the rounds. MLflow's torch gets 1 intra-op thread, as Naiad's
replica uses. The client shares the cores with the server: the CPU both use (cores, and
microseconds per request) is printed beside each point, and for Naiad the rows per model
call and each batch's time on the model thread (read from the replica's /stats).
"""

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import loadgen
import psutil
from _common import Process, Row, Sections, free_port, say

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results" / "serving.json"
NAIAD_MODULE = "naiad.serving.main"
MAX_BATCH = 64
P99_TARGET_MS = 25.0
VS_MLFLOW_TARGET = 5.0
VS_FIXED_TARGET = 0.70
CHECK_IMAGES = 50  # test images each model server must classify as the model does
DISTINCT_BODIES = 64  # the load cycles through this many different images


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


QUICK = Sizes(
    seconds=1.5, warmup=0.5, rounds=1, delays_ms=(0.0, 2.0), sweep_seconds=1.0,
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
    """A server to put under load: how to start it and where to send requests."""

    name: str
    argv: list[str]
    port: int
    env: dict[str, str] | None = None
    health: str = "/ping"
    stats: str | None = None  # a JSON figures route with batch counts (Naiad's /stats)
    start_timeout: float = 120.0
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def naiad_target(
    model_dir: Path, module: str, delay_ms: float, fixed: bool = False, name: str = "naiad"
) -> Target:
    port = free_port()
    program = [str(BENCH / "fixed_answer.py")] if fixed else ["-m", module]
    argv = [sys.executable, *program, str(model_dir), "--port", str(port)]
    argv += ["--max-batch", str(MAX_BATCH), "--max-delay-ms", f"{delay_ms:g}"]
    config = {"max_batch": MAX_BATCH, "max_delay_ms": delay_ms, "fixed_answer": fixed}
    return Target(name, argv, port, stats=None if fixed else "/stats", config=config)


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


def tree_cpu(pid: int) -> Callable[[], float]:
    """CPU seconds so far of a process and its descendants (the server's workers)."""
    root = psutil.Process(pid)

    def read() -> float:
        total = 0.0
        for proc in [root, *root.children(recursive=True)]:
            try:
                times = proc.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
        return total

    return read


def check_answers(url: str, model: Model) -> float:
    """The share of test images the server classifies as the model in this process does."""
    agree = 0
    with httpx.Client(timeout=60) as client:
        for i in range(CHECK_IMAGES):
            response = client.post(url, json={"inputs": model.x_test[i : i + 1].tolist()})
            if response.status_code != 200:
                raise RuntimeError(f"{url}: {response.status_code} {response.text[:500]}")
            predictions = response.json()["predictions"]
            row = predictions[0]
            agree += max(range(len(row)), key=row.__getitem__) == model.expected[i]
    return agree / CHECK_IMAGES


class Running:
    """A started target: its process, where to send requests, how to read its CPU."""

    def __init__(self, target: Target, root: Path) -> None:
        self.target = target
        self.process = Process(target.argv, root / f"{target.name}.log", target.env)
        self.url = target.base + "/invocations"
        self.record: dict[str, Any] = {"config": target.config}
        self.points: dict[int, list[dict[str, Any]]] = {}
        self.cpu: Callable[[], float] | None = None

    def start(self, model: Model | None) -> None:
        """Start, wait for ``/ping``, and (unless ``model`` is None) check its answers."""
        target = self.target
        self.record["start_s"] = self.process.start(
            target.base + target.health, timeout=target.start_timeout
        )
        assert self.process.proc is not None
        self.cpu = tree_cpu(self.process.proc.pid)
        if model is not None:
            agreement = self.record["agreement"] = check_answers(self.url, model)
            if agreement < 1.0:
                raise RuntimeError(
                    f"{target.name} disagrees with the model on "
                    f"{(1 - agreement) * CHECK_IMAGES:.0f} of {CHECK_IMAGES} images"
                )

    def batches(self) -> tuple[float, float, float] | None:
        """(batches, rows, inference seconds) so far, from the server's stats route."""
        if self.target.stats is None:
            return None
        try:
            doc = httpx.get(self.target.base + self.target.stats, timeout=5).json()
            return doc["batches"], doc["rows"], doc["inference_seconds"]["sum"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return None

    def load(self, payload: list[bytes], c: int, seconds: float, warmup: float) -> None:
        before = self.batches()
        result = loadgen.run(self.url, payload, c, seconds, warmup, server_cpu=self.cpu)
        point = result.as_dict()
        after = self.batches()
        extra = ""
        if before and after and after[0] > before[0]:
            n = after[0] - before[0]
            point["rows_per_batch"] = (after[1] - before[1]) / n
            point["batch_ms"] = (after[2] - before[2]) / n * 1000
            extra = f", {point['rows_per_batch']:.1f} rows/batch, "
            extra += f"{point['batch_ms']:.2f} ms/batch"
        self.points.setdefault(c, []).append(point)
        say(
            f"  {self.target.name} c={c}: {result.rps:,.0f} req/s, p50 {result.p50_ms:.2f} ms, "
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

    def stop(self) -> None:
        self.process.stop()


def start_all(
    targets: list[Target], root: Path, model: Model | None, errors: dict[str, str]
) -> dict[str, Running]:
    """Start each target (a failure is recorded in ``errors`` and the others go on)."""
    running: dict[str, Running] = {}
    for target in targets:
        say(f"starting {target.name} ...")
        server = Running(target, root)
        try:
            server.start(None if target.config.get("fixed_answer") else model)
        except Exception as exc:
            server.stop()
            errors[target.name] = f"{type(exc).__name__}: {exc}"
            say(f"  {target.name} FAILED: {errors[target.name]}")
            continue
        say(f"  up in {server.record['start_s']:.1f} s")
        running[target.name] = server
    return running


def interleave(
    servers: list[Running],
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
                name = server.target.name
                if name in errors:
                    continue
                try:
                    server.load(payload, c, seconds, warmup)
                except Exception as exc:
                    errors[name] = f"{type(exc).__name__}: {exc}"
                    say(f"  {name} FAILED: {errors[name]}")


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


def cpu_note(p: dict[str, Any]) -> str:
    if not p:
        return ""
    bad = p["errors"] + p["failures"]
    return f"CPU client {p['client_cpu']:.2f} server {p['server_cpu']:.2f} cores" + (
        f"; {bad} errors" if bad else ""
    )


def rows_for(raw: dict[str, Any], sizes: Sizes) -> list[Row]:
    nan = math.nan
    rows: list[Row] = []
    delay = raw.get("naiad", {}).get("config", {}).get("max_delay_ms")
    config = "" if delay is None else f"Naiad --max-batch {MAX_BATCH} --max-delay-ms {delay:g}"
    for c in sizes.concurrency:
        n, m, f = (point(raw, k, c) for k in ("naiad", "mlflow", "fixed"))
        target = c in (16, 64)
        ratio = n.get("rps", nan) / m.get("rps", nan) if n and m else nan
        rows.append(
            Row(f"c={c}", "requests/s: Naiad vs mlflow models serve", "req/s",
                n.get("rps"), m.get("rps"), True, f">= {VS_MLFLOW_TARGET:g}x" if target else "",
                (ratio >= VS_MLFLOW_TARGET) if target and n and m else None,
                f"Naiad {cpu_note(n)}; MLflow {cpu_note(m)}")
        )  # fmt: skip
        rows.append(
            Row(f"c={c}", "p50 latency: Naiad vs MLflow", "ms",
                n.get("p50_ms"), m.get("p50_ms"), False)
        )  # fmt: skip
        p99_target = c == 16
        rows.append(
            Row(f"c={c}", "p99 latency: Naiad vs MLflow", "ms",
                n.get("p99_ms"), m.get("p99_ms"), False,
                f"< {P99_TARGET_MS:g} ms" if p99_target else "",
                (n["p99_ms"] < P99_TARGET_MS) if p99_target and n else None)
        )  # fmt: skip
        vs_fixed = n.get("rps", nan) / f.get("rps", nan) if n and f else nan
        rows.append(
            Row(f"c={c}", "requests/s: Naiad vs the same HTTP stack, fixed answer", "req/s",
                n.get("rps"), f.get("rps"), True,
                f">= {VS_FIXED_TARGET:.2f}x" if target else "",
                (vs_fixed >= VS_FIXED_TARGET) if target and n and f else None,
                f"fixed answer p50 {f.get('p50_ms', nan):.2f} ms, p99 {f.get('p99_ms', nan):.2f}"
                f" ms; {cpu_note(f)}" if f else "")
        )  # fmt: skip
    ceiling = raw.get("torch", {})
    if ceiling:
        top = max(sizes.concurrency)
        n_top, n_one = point(raw, "naiad", top), point(raw, "naiad", 1)
        share = [
            f"{100 * n.get('rps', nan) / ceiling[k]:.1f}% of it"
            for n, k in ((n_top, "batch64_sps"), (n_one, "batch1_sps"))
        ]
        rows += [
            Row("model ceiling", f"Naiad c={top} req/s vs torch in-process, batch {MAX_BATCH}",
                "samples/s", n_top.get("rps"), ceiling["batch64_sps"], True,
                note=f"Naiad at {share[0]}; plain torch, 1 thread, inference mode",
                comparable=False),
            Row("model ceiling", "Naiad c=1 req/s vs torch in-process, batch 1", "samples/s",
                n_one.get("rps"), ceiling["batch1_sps"], True,
                note=f"Naiad at {share[1]}; torch batch 1 with JSON decode + encode: "
                f"{ceiling['batch1_json_sps']:,.0f}/s", comparable=False),
        ]  # fmt: skip
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
    if config:
        rows.append(Row("config", config, "", None, None, True))
    return rows


CPU_KEYS = ("client_cpu", "server_cpu")


def points_table(raw: dict[str, Any], sizes: Sizes) -> str:
    """Every target at every concurrency: the plain figures, CPU per request, and (from
    Naiad's /stats) rows per model call and the milliseconds each batch took from its
    hand-off to the model thread to its result."""
    head = ["target", "c", "req/s", "p50 ms", "p99 ms", "errors", "CPU client / server",
            "CPU us/req client / server", "rows/batch", "ms/batch"]  # fmt: skip
    delay = raw.get("naiad", {}).get("config", {}).get("max_delay_ms")
    names = {
        "naiad": "Naiad endpoint" + ("" if delay is None else f", delay {delay:g} ms"),
        "fixed": "Naiad, fixed answer",
        "mlflow": "mlflow models serve",
    }
    lines = []
    for key, label in names.items():
        for c in sizes.concurrency:
            p = point(raw, key, c)
            if not p:
                continue
            per = [
                1e6 * p[k] / p["rps"] if p["rps"] else math.nan
                for k in ("client_cpu", "server_cpu")
            ]
            lines.append([
                label, str(c), f"{p['rps']:,.0f}", f"{p['p50_ms']:.2f}", f"{p['p99_ms']:.2f}",
                str(p["errors"] + p["failures"]), f"{p['client_cpu']:.2f} / {p['server_cpu']:.2f}",
                f"{per[0]:.0f} / {per[1]:.0f}",
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


def measure_servers(
    model: Model,
    payload: list[bytes],
    naiad_dir: Path | None,
    mlflow_dir: Path | None,
    root: Path,
    sizes: Sizes,
    module: str,
    raw: dict[str, Any],
    errors: dict[str, str],
) -> None:
    """The delay sweep, then Naiad, its fixed answer and MLflow, interleaved; into ``raw``."""
    started: list[Running] = []
    try:
        measured: list[Running] = []
        if naiad_dir is not None:
            by_delay = {
                d: naiad_target(naiad_dir, module, d, name=f"naiad-d{d:g}") for d in sizes.delays_ms
            }
            sweep = start_all(list(by_delay.values()), root, model, errors)
            started += sweep.values()
            delay = sizes.delays_ms[0]
            if len(sizes.delays_ms) > 1 and sweep:
                say(f"delay sweep over --max-delay-ms {', '.join(f'{d:g}' for d in by_delay)}")
                interleave(list(sweep.values()), payload, (16, 64), sizes.sweep_rounds,
                           sizes.sweep_seconds, sizes.warmup, errors)  # fmt: skip
                raw["sweep"] = {d: sweep[t.name].summary() for d, t in by_delay.items()
                                if t.name in sweep}  # fmt: skip
                try:
                    delay = best_delay(raw["sweep"])
                except RuntimeError as exc:
                    errors["sweep"] = str(exc)
            chosen = sweep.get(by_delay[delay].name)
            for server in sweep.values():
                if server is not chosen:
                    server.stop()
            if chosen is not None:
                say(f"Naiad with --max-delay-ms {delay:g}")
                chosen.points = {}  # the sweep's points are not the measurement's
                chosen.target.name = "naiad"
                measured.append(chosen)
            fixed = naiad_target(naiad_dir, module, 0.0, fixed=True, name="fixed")
            new = start_all([fixed], root, None, errors)
            measured += new.values()
            started += new.values()
        if mlflow_dir is not None:
            new = start_all([mlflow_target(mlflow_dir, root)], root, model, errors)
            measured += new.values()
            started += new.values()
        interleave(measured, payload, sizes.concurrency, sizes.rounds, sizes.seconds, sizes.warmup,
                   errors)  # fmt: skip
        for server in measured:
            raw[server.target.name] = server.summary()
    finally:
        for server in started:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short windows, one round: smoke test")
    parser.add_argument("--seconds", type=float, help="the measuring window per point")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (medians are reported)")
    parser.add_argument(
        "--delays", type=float, nargs="+", help="--max-delay-ms values to sweep for Naiad"
    )
    parser.add_argument("--json", type=Path, default=RESULTS, help="default: %(default)s")
    parser.add_argument("--naiad-module", default=NAIAD_MODULE, help=argparse.SUPPRESS)
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
            root, sizes, args.naiad_module, raw, errors,
        )  # fmt: skip
        load["servers"] = os.getloadavg()[0]

    rows = rows_for(raw, sizes)
    for name, error in errors.items():
        rows.append(Row(name, f"{name} FAILED", "", None, None, True, note=error))
    print(points_table(raw, sizes))
    print()
    sections.report(rows, "baseline", args.json, sizes, _versions)


def _versions() -> dict[str, str]:
    import mlflow
    import torch

    return {"torch": torch.__version__, "mlflow": mlflow.__version__}


if __name__ == "__main__":
    main()
