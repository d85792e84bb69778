"""Tracking benchmark: Naiad against MLflow, both measured in this run on this machine.

What it measures, and why (the targets are the issue's, printed beside each figure):

1. Ingest. Naiad: ``run.log_metrics({"loss": v}, step=i)`` in a tight loop, then
   ``run.flush()``; points/s from the first call to flush's return, and the SDK's cost per
   call (the loop alone). MLflow: ``MlflowClient().log_batch`` with 1,000 metrics a call, and
   ``mlflow.log_metric`` one call at a time. Training should not wait on its tracker.
2. Read. Naiad reads a 1,000,000-point series whole and downsampled to 1,000 buckets;
   MLflow reads its series with ``get_metric_history`` and with the sampled endpoint its UI
   charts use (get-history-bulk-interval, max_results=1000). MLflow ingests slowly, so its
   series holds fewer points (100,000); read rates are compared per point. Charts must be
   instant and exports must not take minutes.
3. The same ingest and read figures for Naiad with PostgreSQL as its store.
4. Server start: process start to a healthy HTTP answer, on fresh stores (the median of
   ``restarts`` stores that never held anything: the first of the run and more made for
   it) and (median of restarts) on the store the benchmark just filled.
5. Fan-in (Naiad alone, PostgreSQL): 64 runs x 8 ranks, each rank its own SDK pipeline,
   client and sender thread, as each rank of a multi-node job is its own process, all
   logging at a fixed step rate into one live server. Total points/s stored, and the
   ingest delay: from a point being logged to the API returning it as its key's latest
   point. A cluster's jobs log into one server at once; this is what that server sees.

Fairness: both servers run on this machine over HTTP on 127.0.0.1 with SQLite files in a
temporary directory (then each on its own scratch PostgreSQL database), default settings
except MLflow's job runner, which is off; every series is read back and counted before it
is timed; reads are medians of repeats; MLflow's metric objects are built before its clock
starts.
"""

import argparse
import contextlib
import dataclasses
import io
import logging
import math
import multiprocessing as mp
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
import warnings
from array import array
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from _common import (
    Process,
    Row,
    Sections,
    free_port,
    median_time,
    say,
    scratch,
    timed,
)

POSTGRES_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"
BUCKETS = 1000
MLFLOW_BATCH = 1000


@dataclass(frozen=True)
class Sizes:
    naiad_points: int = 1_000_000
    mlflow_points: int = 100_000
    mlflow_single_calls: int = 300
    reads: int = 5
    mlflow_reads: int = 3
    restarts: int = 3


QUICK = Sizes(
    naiad_points=100_000, mlflow_points=10_000, mlflow_single_calls=50, reads=3, restarts=1
)


@dataclass(frozen=True)
class FanIn:
    runs: int = 64  # at one level of the sweep
    ranks: int = 8  # per run
    steps_per_s: float = 10.0  # per rank: a training step every 100 ms
    keys: int = 4  # metrics a step logs (loss, lr, grad norm, throughput)
    seconds: float = 30.0  # of logging, then every rank flushes
    workers: int = 4  # processes hosting the ranks (this machine has 2 cores)
    # runs per worker whose ranks' delay is timed: a reader's GETs load the server too
    timed_runs: int = 1


KEYS = ("loss", "lr", "grad_norm", "samples_per_s")  # a step's metrics, first ``keys`` of them


QUICK_FAN_IN = FanIn(seconds=10.0)
FAN_IN_RUNS = "16,32,64"  # the sweep's levels: runs of ``FanIn.ranks`` ranks each
STALL_S = 10.0  # a metrics request or read taking longer than this fails the level
POLL_S = 0.2  # the delay readers' round: a point's delay is known to within this


# -- Naiad --------------------------------------------------------------------------


def naiad_figures(home: Path, sizes: Sizes, env: dict[str, str] | None = None) -> dict[str, float]:
    """Start a server on ``home``, ingest and read one series, then time restarts."""
    import naiad
    from naiad.testing.live import LiveServer

    server = LiveServer(home=home, env=env or {})
    first_start = server.start()
    os.environ["NAIAD_HOME"] = str(home)  # the SDK spools under it
    out: dict[str, float] = {"first_start_s": first_start}
    try:
        client = naiad.Client(url=server.url, token=server.token)
        run = naiad.start_run(experiment="bench", client=client)
        n = sizes.naiad_points
        log_metrics = run.log_metrics
        started = time.perf_counter()
        for i in range(n):
            log_metrics({"loss": 1.0 / (i + 1)}, step=i)
        looped = time.perf_counter()
        if not run.flush():
            raise RuntimeError("naiad: flush timed out")
        flushed = time.perf_counter()
        run.end()
        out["ingest_pps"] = n / (flushed - started)
        out["call_us"] = (looped - started) / n * 1e6
        out["flush_s"] = flushed - looped

        got = client.runs.metric_history(run.id, "loss")
        if got.total_points != n or len(got) != n:
            lost = getattr(run._metrics, "dropped_points", "?")
            raise RuntimeError(f"stored {got.total_points:,} of {n:,} points; SDK dropped {lost}")
        out["read_whole_s"] = median_time(
            lambda: client.runs.metric_history(run.id, "loss"), sizes.reads
        )
        out["read_sampled_s"] = median_time(
            lambda: client.runs.metric_history(run.id, "loss", max_points=BUCKETS), sizes.reads
        )
        client.close()
    finally:
        server.stop()
    starts = []
    for _ in range(sizes.restarts):
        again = LiveServer(home=home, env=env or {})
        try:
            starts.append(again.start())
        finally:
            again.stop()
    out["restart_s"] = statistics.median(starts)
    return out


# -- MLflow -------------------------------------------------------------------------


def mlflow_server(root: Path, backend: str) -> tuple[Process, str]:
    """``mlflow server`` as its docs show it, on a free loopback port; (process, health URL)."""
    port = free_port()
    argv = [
        str(Path(sys.executable).with_name("mlflow")),
        "server",
        "--backend-store-uri",
        backend,
        "--default-artifact-root",
        str(root / "art"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    # The job runner (huey consumers for GenAI jobs) is off: tracking does not use it, and on a
    # small machine its processes would slow MLflow's start and steal CPU from its requests.
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    return Process(argv, root / "mlflow-server.log", env), f"http://127.0.0.1:{port}/health"


def mlflow_figures(root: Path, sizes: Sizes, backend: str | None = None) -> dict[str, float]:
    """Start ``mlflow server`` (SQLite unless ``backend``), ingest and read, time restarts."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    root.mkdir(parents=True, exist_ok=True)
    backend = backend or f"sqlite:///{root / 'mlflow.db'}"
    server, health = mlflow_server(root, backend)
    out: dict[str, float] = {"first_start_s": server.start(health)}
    url = health.removesuffix("/health")
    try:
        mlflow.set_tracking_uri(url)
        client = MlflowClient()
        run_id = client.create_run(client.create_experiment("bench")).info.run_id
        n = sizes.mlflow_points
        now = int(time.time() * 1000)
        batches = [
            [Metric("loss", 1.0 / (i + 1), now + i, i) for i in range(s, min(n, s + MLFLOW_BATCH))]
            for s in range(0, n, MLFLOW_BATCH)
        ]
        elapsed, _ = timed(lambda: [client.log_batch(run_id, metrics=b) for b in batches])
        out["batch_pps"] = n / elapsed

        calls = sizes.mlflow_single_calls
        with contextlib.redirect_stdout(io.StringIO()), mlflow.start_run(run_id=run_id):
            elapsed, _ = timed(
                lambda: [mlflow.log_metric("single", 1.0 / (i + 1), step=i) for i in range(calls)]
            )
        out["single_pps"] = calls / elapsed
        out["single_call_us"] = elapsed / calls * 1e6

        got = client.get_metric_history(run_id, "loss")
        if len(got) != n:
            raise RuntimeError(f"stored {len(got):,} of {n:,} points")
        out["read_whole_s"] = median_time(
            lambda: client.get_metric_history(run_id, "loss"), sizes.mlflow_reads
        )
        sampled_url = f"{url}/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval"
        query = {"run_ids": run_id, "metric_key": "loss", "max_results": BUCKETS}

        def sampled() -> int:
            response = httpx.get(sampled_url, params=query, timeout=120)
            response.raise_for_status()
            return len(response.json()["metrics"])

        if sampled() > BUCKETS:
            raise RuntimeError("mlflow: the sampled read returned more than max_results")
        out["read_sampled_s"] = median_time(sampled, sizes.reads)
    finally:
        server.stop()
    starts = []
    for _ in range(sizes.restarts):
        again, health = mlflow_server(root, backend)
        try:
            starts.append(again.start(health))
        finally:
            again.stop()
    out["restart_s"] = statistics.median(starts)
    return out


# -- PostgreSQL ---------------------------------------------------------------------


def postgres_reachable(url: str) -> str | None:
    """None when we can connect, else why not."""
    import psycopg

    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]
    return None


# -- fresh stores ------------------------------------------------------------------


def naiad_fresh_start(home: Path, database_url: str | None) -> float:
    from naiad.testing.live import LiveServer

    server = LiveServer(home=home, env={"NAIAD_DATABASE_URL": database_url} if database_url else {})
    try:
        return server.start()
    finally:
        server.stop()


def mlflow_fresh_start(root: Path, database_url: str | None) -> float:
    root.mkdir(parents=True, exist_ok=True)
    backend = f"sqlite:///{root / 'mlflow.db'}"
    if database_url:
        backend = "postgresql+psycopg://" + database_url.split("://", 1)[1]
    server, health = mlflow_server(root, backend)
    try:
        return server.start(health)
    finally:
        server.stop()


def fresh_starts(
    start: Callable[[Path, str | None], float], root: Path, admin_url: str | None, count: int
) -> list[float]:
    """Seconds to a healthy answer on ``count`` new stores (scratch databases on
    PostgreSQL), one server at a time."""
    times = []
    for i in range(count):
        with scratch(admin_url) as database_url:
            times.append(start(root / f"fresh-{i}", database_url))
    return times


# -- fan-in -------------------------------------------------------------------------


def _fan_in_worker(
    url: str,
    token: str,
    home: str,
    runs: dict[str, int],
    fan: FanIn,
    go: Any,
    abort: Any,
    out: Any,
) -> None:
    """One process's share of the ranks: every rank with its own client and pipeline (its
    sender thread), one pacing loop logging each rank's steps, and a reader polling the
    runs for the latest step of each rank's loss to time when points become readable.

    ``runs``: run id -> the step slot it starts on. Jobs start at different times, so the
    runs' starts spread over a second; the ranks of one run start together, as DDP's do.
    A failed or stalled request (over ``STALL_S``) sets ``abort`` for every worker: the
    server failing is the result, and waiting out each rank's retries would hide it."""
    os.environ["NAIAD_HOME"] = home  # each pipeline's spool
    import naiad
    from naiad.core.errors import NaiadError
    from naiad.sdk.run import ActiveRun

    requests = array("d")  # seconds of each metrics POST
    failures: list[str] = []
    lock = threading.Lock()

    def failed(exc: BaseException) -> None:
        with lock:
            failures.append(f"{type(exc).__name__}: {exc}")
        abort.set()

    def timed(post: Callable[..., object]) -> Callable[..., object]:
        def send(*args: object, **kwargs: object) -> object:
            started = time.perf_counter()
            try:
                return post(*args, **kwargs)
            except NaiadError as exc:
                failed(exc)
                raise
            finally:
                took = time.perf_counter() - started
                with lock:
                    requests.append(took)
                if took > STALL_S:
                    failed(TimeoutError(f"a metrics request took {took:.0f} s"))

        return send

    ranks: list[tuple[str, str, ActiveRun]] = []  # (run id, rank name, its run handle)
    for run_id in runs:
        for r in range(fan.ranks):
            client = naiad.Client(url=url, token=token)  # a rank is a process of its own
            client.runs.log_batch = timed(client.runs.log_batch)  # type: ignore[method-assign]
            ranks.append((run_id, f"rank{r}", ActiveRun(client, run_id)))
    steps = int(fan.seconds * fan.steps_per_s)
    # run -> step -> when its ranks had logged it
    logged_at = {run_id: array("d", [math.inf] * steps) for run_id in runs}
    delays, rounds = array("d"), array("d")
    done = threading.Event()

    def reader() -> None:
        client = naiad.Client(url=url, token=token, timeout=STALL_S)
        timed_runs = list(runs)[: fan.timed_runs]
        seen = {(rid, f"loss/{rank}"): -1 for rid, rank, _ in ranks if rid in timed_runs}
        keys = {rid: [f"loss/{rank}" for r, rank, _ in ranks if r == rid] for rid in timed_runs}
        try:
            while not abort.is_set():
                finished = done.is_set()  # read before the round: one full round follows
                started = time.perf_counter()
                for run_id in timed_runs:
                    metrics = client.runs.get(run_id).metrics
                    now, at = time.time(), logged_at[run_id]
                    for key in keys[run_id]:
                        step = metrics[key].step if key in metrics else -1
                        last = seen[run_id, key]
                        delays.extend(now - at[s] for s in range(last + 1, step + 1))
                        seen[run_id, key] = max(last, step)
                rounds.append(time.perf_counter() - started)
                if finished and all(v == steps - 1 for v in seen.values()):
                    return
                if finished and time.perf_counter() - done_at[0] > 60:
                    raise RuntimeError("points still unreadable a minute after every flush")
                time.sleep(max(0.0, POLL_S - (time.perf_counter() - started)))
        except (NaiadError, RuntimeError) as exc:
            failed(exc)
        finally:
            client.close()

    out.put({"ready": True})
    go.wait()
    done_at = [math.inf]
    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    first = time.time()
    names = [[f"{key}/{rank}" for key in KEYS[: fan.keys]] for _, rank, _ in ranks]
    for slot in range(steps + max(runs.values(), default=0)):
        if abort.is_set():
            break
        time.sleep(max(0.0, first + slot / fan.steps_per_s - time.time()))
        now = time.time()
        for (run_id, _, run), keys in zip(ranks, names, strict=True):
            step = slot - runs[run_id]
            if 0 <= step < steps:
                logged_at[run_id][step] = now
                run.log_metrics(dict.fromkeys(keys, 1.0 / (step + 1)), step=step)
    flushed = not abort.is_set() and all(run.flush(120) for _, _, run in ranks)
    last = time.time()
    done_at[0] = time.perf_counter()
    done.set()
    thread.join()
    if not abort.is_set():  # else the process just ends: its senders are daemon threads
        for _, _, run in ranks:
            run.end()  # flushed already: this stops its sender (the run is the server's)
            run.client.close()
    out.put({
        "first": first, "last": last, "flushed": flushed, "steps": steps,
        "failures": len(failures), "first_failure": failures[0] if failures else "",
        "delays": delays.tobytes(), "requests": requests.tobytes(), "rounds": rounds.tobytes(),
    })  # fmt: skip


def _quantile(values: "array[float]", q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else math.nan


def _db_sessions(url: str) -> str:
    """What the server's database connections are doing, seconds after its clients gave
    up: connections left idle in a transaction while requests wait mean the server's
    requests hold their connections waiting for something else, not for the database."""
    import psycopg

    time.sleep(3)
    query = (
        "SELECT state, count(*), coalesce(max(extract(epoch FROM now() - state_change)), 0) "
        "FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "GROUP BY state ORDER BY 2 DESC"
    )
    with psycopg.connect(url, connect_timeout=5) as conn:
        rows = conn.execute(query).fetchall()
    shown = ", ".join(f"{n} {state or 'no state'} (longest {age:.0f} s)" for state, n, age in rows)
    return f"the server's database sessions then: {shown or 'none'}"


def fan_in_figures(home: Path, fan: FanIn, env: dict[str, str]) -> dict[str, float]:
    """Start a server, create the runs, start every rank at once; stored points/s and the
    ingest delay. Every rank's series is counted on the server before anything is reported."""
    import psutil

    import naiad
    from naiad.testing.live import LiveServer

    server = LiveServer(home=home, env=env)
    server.start()
    ctx = mp.get_context("spawn")
    go, abort, out = ctx.Event(), ctx.Event(), ctx.Queue()
    workers = []
    try:
        client = naiad.Client(url=server.url, token=server.token)
        run_ids = [client.runs.create("fan-in", f"job-{i}").id for i in range(fan.runs)]
        per_second = max(1, round(fan.steps_per_s))  # the runs' starts spread over 1 s
        starts = {run_id: i % per_second for i, run_id in enumerate(run_ids)}
        for w in range(fan.workers):
            share = {run_id: starts[run_id] for run_id in run_ids[w :: fan.workers]}
            args = (server.url, server.token, str(home / "ranks"), share, fan, go, abort, out)
            workers.append(ctx.Process(target=_fan_in_worker, args=args, daemon=True))
        for worker in workers:
            worker.start()
        for _ in workers:
            out.get(timeout=300)  # ready: every rank's client and sender thread built
        cpu = psutil.Process(server.process.pid).cpu_times()  # type: ignore[union-attr]
        go.set()
        results = [out.get(timeout=fan.seconds + 600) for _ in workers]
        cpu_after = psutil.Process(server.process.pid).cpu_times()  # type: ignore[union-attr]
        failures = sum(int(r["failures"]) for r in results)
        if failures or not all(r["flushed"] for r in results):
            first = next((r["first_failure"] for r in results if r["first_failure"]), "")
            raise RuntimeError(
                f"{fan.runs} runs x {fan.ranks} ranks: {failures} metric requests or reads "
                f"failed, the first: {first or 'a rank could not flush in 120 s'}; "
                f"{_db_sessions(env['NAIAD_DATABASE_URL'])}"
            )
        steps = int(results[0]["steps"])
        for run_id in run_ids:
            counts = {k: m.count for k, m in client.runs.get(run_id).metrics.items()}
            if len(counts) != fan.ranks * fan.keys or set(counts.values()) != {steps}:
                raise RuntimeError(f"run {run_id} holds {counts}, not {steps} points a key")
        client.close()
    finally:
        for worker in workers:
            worker.join(10)
            if worker.is_alive():
                worker.kill()
        server.stop()
    first = min(float(r["first"]) for r in results)
    last = max(float(r["last"]) for r in results)
    joined = {name: array("d") for name in ("delays", "requests", "rounds")}
    for r in results:
        for name, values in joined.items():
            values.frombytes(r[name])
    points = fan.runs * fan.ranks * fan.keys * steps
    busy = (cpu_after.user + cpu_after.system) - (cpu.user + cpu.system)
    return {
        "points": points,
        "seconds": last - first,
        "stored_pps": points / (last - first),
        "offered_pps": fan.runs * fan.ranks * fan.keys * fan.steps_per_s,
        "requests_per_s": len(joined["requests"]) / (last - first),
        "request_p50_ms": _quantile(joined["requests"], 0.5) * 1000,
        "request_p99_ms": _quantile(joined["requests"], 0.99) * 1000,
        "delay_p50_s": _quantile(joined["delays"], 0.5),
        "delay_p99_s": _quantile(joined["delays"], 0.99),
        "delay_max_s": max(joined["delays"]),
        "delays": len(joined["delays"]),
        "poll_round_p50_ms": _quantile(joined["rounds"], 0.5) * 1000,
        "server_cpu": busy / (last - first),
    }


def fan_in_rows(fan: FanIn, f: dict[str, float]) -> list[Row]:
    """One level's rows (Naiad alone: there is no MLflow figure beside them)."""
    if not f:
        return []
    section = f"fan-in {fan.runs}x{fan.ranks}"
    return [
        Row(section, f"{fan.runs} runs x {fan.ranks} ranks: points stored", "points/s",
            f["stored_pps"], None, True,
            note=f"offered {f['offered_pps']:,.0f}/s; {f['points']:,} pts in {f['seconds']:.1f} s"),
        Row(section, "metric requests", "req/s", f["requests_per_s"], None, True,
            note=f"POST p50 {f['request_p50_ms']:.1f} ms, p99 {f['request_p99_ms']:.0f} ms"),
        Row(section, "ingest delay, logged to readable, p50", "s", f["delay_p50_s"], None, False,
            note=f"SDK flush interval 1 s; {f['delays']:,} points of "
            f"{fan.workers * fan.timed_runs * fan.ranks} ranks timed"),
        Row(section, "ingest delay, logged to readable, p99", "s", f["delay_p99_s"], None, False,
            note=f"max {f['delay_max_s']:.2f} s; read every {POLL_S} s, a round's "
            f"GETs took {f['poll_round_p50_ms']:.0f} ms (p50)"),
        Row(section, "server CPU", "cores", f["server_cpu"], None, False,
            note="the server process, while the ranks logged and flushed"),
    ]  # fmt: skip


def fan_in(root: Path, admin_url: str, levels: list[FanIn], sections: Sections) -> list[Row]:
    """Each level on a server and scratch database of its own, smallest first; a level
    the server fails ends the sweep (the larger ones would fail the same way)."""
    rows: list[Row] = []
    for fan in levels:
        name = f"Naiad fan-in {fan.runs}x{fan.ranks} on PostgreSQL"
        with scratch(admin_url) as database_url:
            env = {"NAIAD_DATABASE_URL": database_url or ""}
            home = root / f"fan-in-{fan.runs}"
            figures = sections.measure(name, fan_in_figures, home, fan, env)
        rows += fan_in_rows(fan, figures or {})
        if figures:
            say(f"{name}: {figures['stored_pps']:,.0f} points/s stored, ingest delay p99 "
                f"{figures['delay_p99_s']:.2f} s")  # fmt: skip
        if name in sections.errors:
            rows.append(Row(f"fan-in {fan.runs}x{fan.ranks}", "FAILED", "", None, None, True,
                            note=sections.errors[name]))  # fmt: skip
            break
    return rows


# -- the table ----------------------------------------------------------------------


def rows_for(store: str, naiad: dict[str, float], mlf: dict[str, float], sizes: Sizes) -> list[Row]:
    """The table's rows for one store; a side that failed is {} and shows as "-"."""
    n, m = sizes.naiad_points, sizes.mlflow_points
    naiad, mlf = defaultdict(lambda: math.nan, naiad), defaultdict(lambda: math.nan, mlf)
    sizes_note = f"Naiad {n:,} pts; MLflow {m:,} pts"
    ratio_batch = naiad["ingest_pps"] / mlf["batch_pps"]
    batch_met = None if math.isnan(ratio_batch) else ratio_batch >= 30
    return [
        Row(store, "ingest: SDK log_metrics+flush vs log_batch(1000)", "points/s",
            naiad["ingest_pps"], mlf["batch_pps"], True, ">= 30x", batch_met, sizes_note),
        Row(store, "ingest: SDK log_metrics+flush vs log_metric", "points/s",
            naiad["ingest_pps"], mlf["single_pps"], True,
            note=f"MLflow {sizes.mlflow_single_calls} calls"),
        Row(store, "ingest: cost of one log call", "us",
            naiad["call_us"], mlf["single_call_us"], False, "< 10 us", naiad["call_us"] < 10,
            "Naiad: the loop alone, no flush"),
        Row(store, "read whole series", "points/s",
            n / naiad["read_whole_s"], m / mlf["read_whole_s"], True, note=sizes_note),
        Row(store, "read whole series", "s",
            naiad["read_whole_s"], mlf["read_whole_s"], False, "< 2 s",
            naiad["read_whole_s"] < 2, sizes_note, comparable=False),
        Row(store, f"read downsampled to {BUCKETS:,}", "ms",
            naiad["read_sampled_s"] * 1000, mlf["read_sampled_s"] * 1000, False, "< 100 ms",
            naiad["read_sampled_s"] < 0.1, f"Naiad min/max of {n:,}; MLflow UI sampling of {m:,}"),
        Row(store, f"server start, new store, median of {sizes.restarts}", "s",
            naiad["first_start_s"], mlf["first_start_s"], False, "< 2 s",
            naiad["first_start_s"] < 2),
        Row(store, f"server restart, median of {sizes.restarts}", "s",
            naiad["restart_s"], mlf["restart_s"], False, "< 2 s", naiad["restart_s"] < 2,
            "on the store filled above"),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke test")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("NAIAD_TEST_POSTGRES_URL", POSTGRES_DEFAULT),
        help="PostgreSQL server to create scratch databases on (default: %(default)s)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--only", choices=["fan-in"], help="run only this section (fan-in needs no MLflow)"
    )
    parser.add_argument(
        "--fan-in-runs",
        default=FAN_IN_RUNS,
        help="the fan-in's levels, smallest first: runs of 8 ranks (default %(default)s)",
    )
    args = parser.parse_args()
    sizes = QUICK if args.quick else Sizes()
    fan = QUICK_FAN_IN if args.quick else FanIn()

    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")

    # A stopped benchmark still stops its servers and drops its scratch databases.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sections = Sections()
    sections.raw["fan-in sizes"] = dataclasses.asdict(fan)
    errors, measure = sections.errors, sections.measure

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="naiad-bench-") as tmp:
        root = Path(tmp)
        stores = [("SQLite", None)]
        why = postgres_reachable(args.postgres)
        if why:
            say(f"PostgreSQL sections skipped: cannot reach {args.postgres}: {why}")
        else:
            stores.append(("PostgreSQL", args.postgres))
        for store, admin_url in stores if args.only is None else []:
            with scratch(admin_url) as naiad_db, scratch(admin_url) as mlflow_db:
                env = {"NAIAD_DATABASE_URL": naiad_db} if naiad_db else None
                backend = mlflow_db and "postgresql+psycopg://" + mlflow_db.split("://", 1)[1]
                naiad = measure(f"Naiad on {store}", naiad_figures, root / f"n{store}", sizes, env)
                mlf = measure(f"MLflow on {store}", mlflow_figures, root / store, sizes, backend)
            # The first start above is one fresh store; a few more make it a median.
            extra = sizes.restarts - 1
            for name, figures, start in (("Naiad", naiad, naiad_fresh_start),
                                         ("MLflow", mlf, mlflow_fresh_start)):  # fmt: skip
                more = measure(f"{name} fresh starts on {store}", fresh_starts, start,
                               root / f"{name}-{store}", admin_url, extra)  # fmt: skip
                if figures and more is not None:
                    figures["first_start_s"] = statistics.median([figures["first_start_s"], *more])
            rows += rows_for(store, naiad or {}, mlf or {}, sizes)
            for name, error in errors.items():
                if name.endswith(store):
                    rows.append(Row(store, f"{name} FAILED", "", None, None, True, note=error))
        if not why:
            levels = [dataclasses.replace(fan, runs=int(n)) for n in args.fan_in_runs.split(",")]
            rows += fan_in(root, args.postgres, levels, sections)

    sections.report(rows, "MLflow", args.json, sizes, _versions)


def _versions() -> dict[str, str]:
    from naiad import __version__

    try:
        import mlflow
    except ImportError:  # --only fan-in runs without the bench extra
        return {"naiad": __version__}
    return {"mlflow": mlflow.__version__, "naiad": __version__}


if __name__ == "__main__":
    main()
