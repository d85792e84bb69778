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

Fairness: both servers run on this machine over HTTP on 127.0.0.1 with SQLite files in a
temporary directory (then each on its own scratch PostgreSQL database), default settings
except MLflow's job runner, which is off; every series is read back and counted before it
is timed; reads are medians of repeats; MLflow's metric objects are built before its clock
starts.
"""

import argparse
import contextlib
import io
import logging
import math
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from _common import (
    Process,
    Row,
    Sections,
    free_port,
    median_time,
    say,
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


@contextlib.contextmanager
def scratch(admin_url: str | None) -> Iterator[str | None]:
    """A scratch PostgreSQL database dropped afterwards; None (SQLite) without ``admin_url``."""
    if admin_url is None:
        yield None
        return
    from naiad.testing.postgres import scratch_database

    with scratch_database(admin_url) as url:
        yield url


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
    args = parser.parse_args()
    sizes = QUICK if args.quick else Sizes()

    warnings.filterwarnings("ignore")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")

    sections = Sections()
    errors, measure = sections.errors, sections.measure

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="naiad-bench-") as tmp:
        root = Path(tmp)
        stores = [("SQLite", None)]
        why = postgres_reachable(args.postgres)
        if why:
            say(f"PostgreSQL section skipped: cannot reach {args.postgres}: {why}")
        else:
            stores.append(("PostgreSQL", args.postgres))
        for store, admin_url in stores:
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

    sections.report(rows, "MLflow", args.json, sizes, _versions)


def _versions() -> dict[str, str]:
    import mlflow

    from naiad import __version__

    return {"mlflow": mlflow.__version__, "naiad": __version__}


if __name__ == "__main__":
    main()
