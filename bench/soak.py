"""A soak: the server under mixed traffic for an hour, with faults on a schedule.

    make bench-soak                                     # an hour on SQLite
    python bench/soak.py --minutes 5 --fault-every 30   # shorter; --database URL for PostgreSQL
    python bench/soak.py --database URL --restart-postgres --s3   # every fault below

Traffic, all the while, through the server's public URL:
- loggers: 5 runs at a time logging a metric at about 200 points/s each, through the SDK
  (its spool keeps points while the server is down), a new run every 30 s;
- API calls: a mix of reads (runs, one run, a metric's history) and writes (tags, a new
  experiment now and then), one after another;
- serving: closed-loop requests to an endpoint of 2 replicas.

Faults, every ``--fault-every`` seconds, in turn: the server SIGKILLed and started again,
one replica SIGKILLed; with ``--restart-postgres`` (on PostgreSQL, the cluster on the
URL's port restarted with Debian's pg_ctlcluster) the database restarted under the server; with
``--s3`` (the artifact store on an S3-compatible test server, moto) the store stopped for
``OUTAGE_S`` and started again, while the API traffic uploads artifacts now and then.

The report: requests made and how each ended; faults injected; points logged, stored,
lost and stored twice (the target for both is 0); requests lost (failed while the server
was up and not in flight at a kill, and not answered 503 while the database or the store
was away: target 0); p99 latency per minute; and the server's
RSS and open file descriptors before each fault and at the end, to show they stay flat.
``--json PATH`` writes the report; the exit code is 1 when a target is missed.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from functools import partial
from pathlib import Path
from typing import Any

import boto3
import httpx
import numpy as np
import psutil

import naiad
from naiad.core.errors import NaiadError, ServerUnreachable
from naiad.testing import postgres
from naiad.testing.endpoints import kill_replicas, replica_pids, scale_model
from naiad.testing.live import LiveServer
from naiad.testing.s3 import FAKE_ENV, StoppableS3

LOGGERS, POINTS_PER_S, RUN_S = 5, 200, 30.0
KILL_WINDOW_S = 0.5  # a request cut off this soon after a kill was in flight at it
DB_WINDOW_S = 3.0  # a 503 this soon after the database came back was answered while it was down
OUTAGE_S = 10.0  # how long the object store stays away


class Recorder:
    """Every request: when it started, what kind, how long, how it ended."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rows: list[tuple[float, str, float, str]] = []

    def add(self, kind: str, started: float, outcome: str) -> None:
        with self.lock:
            self.rows.append((started, kind, time.monotonic() - started, outcome))


def timed(recorder: Recorder, kind: str, call: Any) -> bool:
    started = time.monotonic()
    try:
        call()
    except (httpx.ConnectError, ServerUnreachable):
        recorder.add(kind, started, "refused")  # the server was down: never in flight
        time.sleep(0.05)
        return False
    except httpx.TransportError:
        recorder.add(kind, started, "cut off")
        return False
    except NaiadError as exc:
        recorder.add(kind, started, f"http {getattr(exc, 'status_code', '?')}")
        return False
    recorder.add(kind, started, "ok")
    return True


class Soak:
    def __init__(self, server: LiveServer, stop: threading.Event, artifact: Path) -> None:
        self.server, self.stop, self.artifact = server, stop, artifact
        self.recorder = Recorder()
        self.logged: dict[str, int] = {}  # run id -> points logged
        self.lock = threading.Lock()

    def client(self) -> naiad.Client:
        return naiad.Client(url=self.server.url, token=self.server.token)

    def logger(self, number: int) -> None:
        client = self.client()
        while not self.stop.is_set():
            try:
                run = naiad.start_run(experiment="soak", name=f"l{number}", client=client)
            except NaiadError:
                time.sleep(0.2)  # the server is down: start the run once it is back
                continue
            began, step = time.monotonic(), 0
            while not self.stop.is_set() and time.monotonic() - began < RUN_S:
                run.log_metric("x", float(step), step=step)
                step += 1
                time.sleep(1 / POINTS_PER_S)
            with self.lock:
                self.logged[run.id] = step
            run.end()

    def api(self) -> None:
        client = self.client()
        seen: dict[str, float] = {}  # run id -> when the search first showed it

        def search() -> None:
            for run in client.runs.search(experiment="soak", limit=20)[0]:
                seen.setdefault(run.id, time.monotonic())

        while not self.stop.is_set():
            # a run just started may have no point yet (its metric is then a 404): read
            # the runs seen a few seconds ago
            run_ids = [r for r, at in seen.items() if time.monotonic() - at > 3.0]
            if not run_ids or random.random() < 0.05:
                if not timed(self.recorder, "api", search) or not run_ids:
                    time.sleep(0.1)
                continue
            run_id = random.choice(run_ids)
            pick = random.random()
            if pick < 0.4:
                call = partial(client.runs.get, run_id)
            elif pick < 0.7:
                call = partial(client.runs.metric_history, run_id, "x", max_points=500)
            elif pick < 0.93:
                call = partial(client.runs.set_tags, run_id, {"seen": str(time.time())})
            elif pick < 0.98:
                call = partial(client.runs.upload_artifact, run_id, self.artifact, "soak/f.bin")
            else:
                call = partial(client.experiments.create, f"soak-{time.monotonic_ns()}")
            timed(self.recorder, "api", call)

    def serving(self) -> None:
        headers = {"authorization": f"Bearer {self.server.token}"}
        url = f"{self.server.url}/endpoints/soak/invocations"
        body = {"inputs": [[1.0, 2.0, 3.0, 4.0]]}
        with httpx.Client(timeout=30, headers=headers) as http:

            def call() -> None:
                answer = http.post(url, json=body)
                if answer.status_code != 200:
                    error = NaiadError(answer.text[:200])
                    error.status_code = answer.status_code  # type: ignore[attr-defined]
                    raise error

            while not self.stop.is_set():
                timed(self.recorder, "serving", call)


def footprint(server: LiveServer) -> dict[str, float]:
    assert server.process is not None
    proc = psutil.Process(server.process.pid)
    return {"rss_mb": proc.memory_info().rss / 2**20, "fds": proc.num_fds()}


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q) * 1000) if values else float("nan")


def run_soak(
    minutes: float,
    fault_every: float,
    database: str | None,
    work: Path,
    restart_postgres: list[str] | None = None,
    store: StoppableS3 | None = None,
) -> dict[str, Any]:
    """``restart_postgres``: the pg_ctlcluster command of the database's cluster, to restart
    it as a fault; ``store``: the S3-compatible artifact store, to stop as a fault."""
    env = {"NAIAD_DATABASE_URL": database} if database else {}
    if store is not None:
        store.start()
        os.environ.update(FAKE_ENV)  # the server's, and this process's, S3 credentials
        boto3.client("s3", endpoint_url=store.endpoint_url).create_bucket(Bucket="soak")
        env |= {
            "NAIAD_ARTIFACT_URI": "s3://soak/naiad",
            "NAIAD_S3_ENDPOINT_URL": store.endpoint_url,
        }
    server = LiveServer(home=work / "home", env=env)
    server.start()
    stop = threading.Event()
    artifact = work / "artifact.bin"
    artifact.write_bytes(os.urandom(64 * 1024))
    soak = Soak(server, stop, artifact)
    faults: list[tuple[float, str]] = []
    away: list[tuple[float, float]] = []  # when the database or the store went, came back
    kinds = ["server", "replica"] + (["postgres"] if restart_postgres else [])
    kinds += ["store"] if store is not None else []
    footprints: list[dict[str, Any]] = []
    try:
        client = soak.client()
        client.models.register("soak", path=scale_model(work / "model", 2.0))
        client.endpoints.deploy("soak", model="soak", replicas=2, wait=True, timeout=180)
        client.experiments.create("soak")  # what the API traffic searches
        threads = [threading.Thread(target=soak.logger, args=(i,)) for i in range(LOGGERS)]
        threads += [threading.Thread(target=soak.api), threading.Thread(target=soak.serving)]
        began = time.monotonic()
        for thread in threads:
            thread.start()
        turn = 0
        while time.monotonic() - began < minutes * 60:
            time.sleep(min(fault_every, max(0.0, minutes * 60 - (time.monotonic() - began))))
            if time.monotonic() - began >= minutes * 60:
                break
            footprints.append({"at_s": round(time.monotonic() - began, 1), **footprint(server)})
            kind = kinds[turn % len(kinds)]
            if kind == "server":
                faults.append((time.monotonic(), "server SIGKILL"))
                server.kill()
                time.sleep(0.5)
                server.start()
            elif kind == "replica":
                pids = replica_pids(server.home)
                if pids:
                    faults.append((time.monotonic(), "replica SIGKILL"))
                    psutil.Process(pids[0]).kill()
            elif kind == "postgres":
                assert restart_postgres is not None
                faults.append((went := time.monotonic(), "PostgreSQL restart"))
                restart = [*restart_postgres, "restart", "-m", "fast"]
                subprocess.run(restart, check=True, capture_output=True)
                away.append((went, time.monotonic()))
            else:
                assert store is not None
                faults.append((went := time.monotonic(), "object store outage"))
                store.stop()
                time.sleep(OUTAGE_S)
                store.start()
                away.append((went, time.monotonic()))
            turn += 1
        footprints.append({"at_s": round(time.monotonic() - began, 1), **footprint(server)})
        stop.set()
        for thread in threads:
            thread.join(120)
        return report(soak, faults, footprints, began, client, away)
    finally:
        stop.set()
        server.stop()
        kill_replicas(server.home)
        if store is not None:
            store.stop()


def report(
    soak: Soak,
    faults: list[tuple[float, str]],
    footprints: list[dict[str, Any]],
    began: float,
    client: naiad.Client,
    away: list[tuple[float, float]],
) -> dict[str, Any]:
    stored = lost = twice = 0
    for run_id, logged in soak.logged.items():
        series = client.runs.metric_history(run_id, "x")
        stored += series.total_points
        lost += max(0, logged - len(set(series.steps.tolist())))
        twice += series.total_points - len(set(series.steps.tolist()))
    outcomes: dict[str, Counter[str]] = defaultdict(Counter)
    per_minute: dict[tuple[str, int], list[float]] = defaultdict(list)
    lost_requests: list[str] = []
    kills = [at for at, what in faults if what == "server SIGKILL"]
    for started, kind, seconds, outcome in soak.recorder.rows:
        ended = started + seconds
        if outcome == "http 503" and any(d - 0.1 <= ended <= u + DB_WINDOW_S for d, u in away):
            outcome = "503 while a store was away"  # said so, retryable: not lost
        outcomes[kind][outcome] += 1
        if outcome == "ok":
            per_minute[(kind, int((started - began) // 60))].append(seconds)
        elif outcome not in ("refused", "503 while a store was away"):
            at_kill = any(0 <= ended - k < KILL_WINDOW_S for k in kills)
            if not at_kill:
                since = [round(started - at, 2) for at, _ in faults if at <= ended]
                lost_requests.append(
                    f"{kind} {outcome} at {started - began:.2f}s ({since[-1:]}s after a fault)"
                )
    minutes = sorted({m for _, m in per_minute})
    return {
        "requests": {kind: dict(c) for kind, c in outcomes.items()},
        "faults": dict(Counter(what for _, what in faults)),
        "points": {
            "logged": sum(soak.logged.values()),
            "stored": stored,
            "lost": lost,
            "stored_twice": twice,
        },
        "requests_lost": len(lost_requests),
        "requests_lost_detail": lost_requests[:50],
        "p99_ms_per_minute": {
            kind: [round(percentile(per_minute[(kind, m)], 99), 1) for m in minutes]
            for kind in ("api", "serving")
        },
        "footprint": footprints,
    }


def flat(footprints: list[dict[str, Any]]) -> tuple[bool, str]:
    """RSS within 1.5x and open files within 20 of the first sample, at every sample."""
    if len(footprints) < 2:
        return True, "too short to judge"
    first = footprints[0]
    rss = max(f["rss_mb"] for f in footprints) / first["rss_mb"]
    fds = max(f["fds"] for f in footprints) - first["fds"]
    return rss <= 1.5 and fds <= 20, f"RSS up to {rss:.2f}x the first sample, open files +{fds}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--fault-every", type=float, default=300.0, help="seconds between faults")
    parser.add_argument("--database", help="a PostgreSQL URL (default: SQLite in the home)")
    parser.add_argument(
        "--restart-postgres",
        action="store_true",
        help="also restart the cluster that serves --database (pg_ctlcluster) as a fault",
    )
    parser.add_argument(
        "--s3",
        action="store_true",
        help="keep artifacts on an S3-compatible test server (moto), and stop it as a fault",
    )
    parser.add_argument("--json", type=Path, help="write the report here")
    args = parser.parse_args(argv)
    ctl = None
    if args.restart_postgres:
        ctl = postgres.cluster_ctl(args.database)
        if args.database is None or ctl is None:
            parser.error("--restart-postgres needs --database served by a pg_ctlcluster cluster")
    with tempfile.TemporaryDirectory(prefix="naiad-soak-") as work:
        store = StoppableS3() if args.s3 else None
        result = run_soak(args.minutes, args.fault_every, args.database, Path(work), ctl, store)
    steady, how = flat(result["footprint"])
    result["footprint_flat"] = steady
    points = result["points"]
    print(f"soak: {args.minutes:g} min, faults {result['faults']}")
    for kind, counts in result["requests"].items():
        p99 = result["p99_ms_per_minute"].get(kind, [])
        print(f"  {kind}: {counts}; p99 ms per minute {p99}")
    print(
        f"  points: {points['logged']:,} logged, {points['stored']:,} stored, "
        f"{points['lost']} lost, {points['stored_twice']} stored twice"
    )
    print(f"  requests lost (failed while up, not in flight at a kill): {result['requests_lost']}")
    print(f"  server footprint: {how} ({'flat' if steady else 'GROWING'})")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    missed = points["lost"] or points["stored_twice"] or result["requests_lost"] or not steady
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
