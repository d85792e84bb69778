"""Scheduler benchmark: the real scheduler and database against a simulated GPU cluster.

What runs for real: ``naiad.server.controller.scheduler.Scheduler`` (its ``tick`` called
in a loop, as its thread would), the job service (``naiad.services.jobs.submit``, one
transaction per job, as the API does) and the metadata store (SQLite in a temporary home;
also a scratch PostgreSQL database when one is given). What is simulated: the cluster.
``SimCluster`` implements the part of the Executor protocol the scheduler uses over
``--nodes`` nodes of ``--gpus`` GPUs and ``CPUS`` CPUs, and reports what is free as
``naiad.executors.capacity.NodePool``, the way a cluster executor reports it. A job "runs"
for a number of ticks drawn when it is submitted, then succeeds.

The queue: ``--jobs`` jobs submitted before the first tick, mostly 1 node x 1-8 GPUs, some
2-16 node gangs of 8 GPUs a node, and a 64-node gang every 500 jobs. The policy measured
is the scheduler's own: strict priority-then-FIFO, the head of the queue holding a
reservation on what frees up (no backfill), gangs placed whole on distinct nodes.

Figures: placements per second of tick time, ticks/s and the mean tick at each queue
depth, how long each 64-node gang waits at the head of the queue before it is placed
(ticks, and seconds of tick time), that every gang starts and no job overtakes an
earlier one, the longest wait of each class of job, and GPU use while jobs wait.
"""

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _common import machine, say, scratch

CPUS = 64  # per node
BIG_GANG = 64  # nodes
BIG_EVERY = 500  # one 64-node gang every this many jobs
GANG_SHARE = 0.12  # of the other jobs: 2-16 node gangs of whole nodes
DURATION_TICKS = (5, 20)  # how long a job runs, uniform, in ticks
WAIT_FIELDS = ("jobs", "max_wait_ticks", "max_head_ticks", "max_head_s", "sum_wait")


@dataclass(frozen=True)
class Job:
    """One queued job as the simulation sees it: its gang and how long it runs."""

    name: str
    nodes: int
    gpus: int  # per node; one process per GPU
    ticks: int  # how long it runs once started

    @property
    def kind(self) -> str:
        if self.nodes >= BIG_GANG:
            return f"{BIG_GANG}-node gang"
        return "gang 2-16 nodes" if self.nodes > 1 else "1 node"


def workload(count: int, gpus: int, seed: int = 0) -> list[Job]:
    """The queue, in submission order (seeded: every run sees the same jobs)."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        if i % BIG_EVERY == BIG_EVERY // 2:
            nodes, per_node = BIG_GANG, gpus
        elif rng.random() < GANG_SHARE:
            nodes, per_node = rng.choice((2, 4, 8, 16)), gpus
        else:
            nodes, per_node = 1, rng.choice([g for g in (1, 2, 4, 8) if g <= gpus])
        out.append(Job(f"job-{i:05d}", nodes, per_node, rng.randint(*DURATION_TICKS)))
    return out


# -- the simulated cluster -------------------------------------------------------------


@dataclass
class SimCluster:
    """A cluster executor's answers without a cluster: it keeps each node's free CPUs and
    GPUs, places a gang with the same best-fit ``NodePool.take`` the scheduler planned it
    with, and ends each job ``ticks`` after it started. ``now`` is the tick being run."""

    node_count: int
    gpus_per_node: int
    durations: dict[str, int] = field(default_factory=dict)
    now: int = 0
    started: dict[str, int] = field(default_factory=dict)  # job -> tick it was placed on
    order: list[str] = field(default_factory=list)  # placements in order
    placed: dict[str, list[int]] = field(default_factory=dict)  # running job -> its nodes
    needs: dict[str, tuple[int, int]] = field(default_factory=dict)  # job -> (CPUs, GPUs) a node
    ended: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        node = {"CPU": float(CPUS), "GPU": float(self.gpus_per_node)}
        self.free = [dict(node) for _ in range(self.node_count)]

    # what the scheduler calls
    @property
    def slots(self) -> int:
        return self.node_count * self.gpus_per_node

    @property
    def nodes(self) -> int:
        return self.node_count

    def capacity(self, running: Sequence[Any]) -> Any:
        """What is free now, as a cluster reports it (its own books, not ``running``)."""
        from naiad.executors.capacity import node_pool

        return node_pool(self.free)

    def submit(self, spec: Any) -> Any:
        from naiad.executors.base import JobHandle
        from naiad.executors.capacity import NodePool

        before = [(n["CPU"], n["GPU"]) for n in self.free]
        # the scheduler's own placement rule, applied to the cluster's books
        why = NodePool(self.free).take(spec.nodes, spec.processes_per_node, spec.gpus)
        if why is not None:
            raise RuntimeError(f"{spec.job_name} was submitted without room: {why}")
        self.placed[spec.job_name] = [
            i for i, n in enumerate(self.free) if (n["CPU"], n["GPU"]) != before[i]
        ]
        self.needs[spec.job_name] = (spec.processes_per_node, spec.gpus)
        self.started[spec.job_name] = self.now
        self.order.append(spec.job_name)
        return JobHandle("sim", spec.job_name)

    def poll(self, spec: Any) -> Any:
        from naiad.executors.base import ExecState, Phase

        began = self.started.get(spec.job_name)
        if began is None:
            return ExecState(Phase.LOST, "not on the simulated cluster")
        phase = Phase.SUCCEEDED if spec.job_name in self.ended else Phase.RUNNING
        return ExecState(phase, started_at=time.time())

    def stop(self, spec: Any, grace_s: float) -> None:
        raise RuntimeError("the benchmark stops no job")

    def find(self, job_name: str) -> Any:
        return None

    def collect_metrics(self, handle: Any, run_id: str) -> Iterator[Any]:
        return iter(())

    def drop_metrics(self, handle: Any, run_id: str, batch_ids: Collection[str]) -> None:
        pass

    # what the benchmark calls
    def advance(self, now: int) -> None:
        """Move the clock to tick ``now``: jobs whose time is up end and free their nodes."""
        self.now = now
        done = [n for n in self.placed if now >= self.started[n] + self.durations[n]]
        for name in done:
            cpus, gpus = self.needs[name]
            for i in self.placed.pop(name):
                self.free[i]["CPU"] += cpus
                self.free[i]["GPU"] += gpus
            self.ended.add(name)

    def busy_gpus(self) -> float:
        return self.node_count * self.gpus_per_node - sum(n["GPU"] for n in self.free)


# -- the run ---------------------------------------------------------------------------


def put_source(state: Any) -> str:
    """A one-file source snapshot in the artifact store, as ``PUT /sources`` leaves it."""
    from naiad.testing.jobs import source_tarball

    state.artifacts.put_bytes("sources/bench.tar.gz", source_tarball({"train.py": ""}))
    return "sources/bench.tar.gz"


def queue_head(state: Any) -> str | None:
    """The job at the head of the queue (read outside the timed tick)."""
    from sqlalchemy import select

    from naiad.core.status import Status
    from naiad.store.tables import JobRow

    query = (
        select(JobRow.name)
        .where(JobRow.status == Status.PENDING.value)
        .order_by(JobRow.priority.desc(), JobRow.created_at, JobRow.id)
        .limit(1)
    )
    with state.sessions() as session:
        return session.scalar(query)


def simulate(home: Path, database_url: str | None, args: argparse.Namespace) -> dict[str, Any]:
    """Submit the queue, then tick until every job is placed; the figures of one store."""
    from naiad.server.app import build_state
    from naiad.settings import Settings

    state = build_state(Settings(home=home, database_url=database_url, warm_start=False))
    try:
        return _run(state, args)
    finally:
        state.engine.dispose()


def _run(state: Any, args: argparse.Namespace) -> dict[str, Any]:
    from naiad.schemas.jobs import JobCreate
    from naiad.server.controller.scheduler import Scheduler
    from naiad.services import jobs as job_service
    from naiad.store.db import transaction

    cluster = SimCluster(args.nodes, args.gpus)
    scheduler = Scheduler(state, cluster)  # type: ignore[arg-type]
    source = put_source(state)
    queue = workload(args.jobs, args.gpus)
    submitted_at = time.perf_counter()
    for job in queue:
        cluster.durations[job.name] = job.ticks
        body = JobCreate(
            name=job.name,
            entrypoint="train.py",
            source_uri=source,
            nodes=job.nodes,
            processes_per_node=job.gpus,
            gpus=job.gpus,
        )
        with transaction(state.sessions) as session:
            job_service.submit(
                session, body, state.artifacts, slots=cluster.slots, nodes=args.nodes
            )
    submit_s = time.perf_counter() - submitted_at
    say(f"submitted {len(queue):,} jobs in {submit_s:.1f} s; ticking")

    ticks: list[tuple[int, int, float]] = []  # (queue depth before, placed, seconds)
    head_since: dict[str, int] = {}  # job -> first tick after which it was the head
    busy = 0.0  # GPU-ticks in use while jobs waited
    now = 0
    while len(cluster.started) < len(queue):
        now += 1
        if now > args.max_ticks:
            left = len(queue) - len(cluster.started)
            raise RuntimeError(f"{left} jobs still waiting after {args.max_ticks} ticks")
        cluster.advance(now)
        depth, before = len(queue) - len(cluster.started), len(cluster.started)
        started = time.perf_counter()
        scheduler.tick()
        ticks.append((depth, len(cluster.started) - before, time.perf_counter() - started))
        busy += cluster.busy_gpus()
        head = queue_head(state)
        if head is not None:
            head_since.setdefault(head, now)
        if now % 100 == 0:
            say(f"tick {now}: {len(queue) - len(cluster.started):,} waiting")
    return figures(queue, cluster, ticks, head_since, busy, submit_s)


def figures(
    queue: list[Job],
    cluster: SimCluster,
    ticks: list[tuple[int, int, float]],
    head_since: dict[str, int],
    busy: float,
    submit_s: float,
) -> dict[str, Any]:
    """Rates, tick times by queue depth, waits by class of job, and the order check."""
    tick_s = [s for _, _, s in ticks]
    spent = [0.0]  # tick seconds spent up to and including tick i (1-based)
    for s in tick_s:
        spent.append(spent[-1] + s)
    rank = {job.name: i for i, job in enumerate(queue)}
    overtakes = sum(
        rank[b] < rank[a] for a, b in zip(cluster.order, cluster.order[1:], strict=False)
    )
    by_depth: dict[str, list[float]] = {}
    for depth, _, s in ticks:
        if depth:
            low = (depth - 1) // 1000 * 1000
            by_depth.setdefault(f"{low + 1:,}-{low + 1000:,}", []).append(s)
    waits: dict[str, dict[str, float]] = {}
    for job in queue:
        placed = cluster.started[job.name]
        head = head_since.get(job.name, placed)  # placed on the tick it became the head
        w = waits.setdefault(job.kind, dict.fromkeys(WAIT_FIELDS, 0))
        w["jobs"] += 1
        w["sum_wait"] += placed
        w["max_wait_ticks"] = max(w["max_wait_ticks"], placed)
        w["max_head_ticks"] = max(w["max_head_ticks"], placed - head)
        w["max_head_s"] = max(w["max_head_s"], spent[placed] - spent[head])
    for w in waits.values():
        w["mean_wait_ticks"] = w.pop("sum_wait") / w["jobs"]
    big = [j for j in queue if j.nodes >= BIG_GANG]
    spans = [
        (head_since.get(j.name, cluster.started[j.name]), cluster.started[j.name]) for j in big
    ]
    total_gpus = cluster.node_count * cluster.gpus_per_node
    return {
        "submit_s": submit_s,
        "submits_per_s": len(queue) / submit_s,
        "ticks": len(ticks),
        "tick_s_total": sum(tick_s),
        "placements_per_s": len(queue) / sum(tick_s),
        "ticks_per_s": len(ticks) / sum(tick_s),
        "mean_tick_ms": statistics.mean(tick_s) * 1000,
        "max_tick_ms": max(tick_s) * 1000,
        "first_tick": (ticks[0][1], ticks[0][2]),
        "tick_ms_by_depth": {k: statistics.mean(v) * 1000 for k, v in by_depth.items()},
        "ticks_by_depth": {k: len(v) for k, v in by_depth.items()},
        "big_gangs": len(big),
        "big_gangs_started": sum(j.name in cluster.started for j in big),
        "big_head_ticks": [placed - head for head, placed in spans],
        "big_head_s": [spent[placed] - spent[head] for head, placed in spans],
        "overtakes": overtakes,
        "waits": waits,
        "gpu_use": busy / (len(ticks) * total_gpus),
    }


# -- the table ---------------------------------------------------------------------------


def rows_for(store: str, f: dict[str, Any], jobs: int) -> list[tuple[str, str, str, str]]:
    """(store, figure, value, note) rows for one store."""
    depth = f["tick_ms_by_depth"]
    first_placed, first_s = f["first_tick"]
    top = max(depth, key=lambda k: int(k.split("-")[0].replace(",", "")))
    rows = [
        (store, "submit through the job service", f"{f['submits_per_s']:,.0f} jobs/s",
         f"{jobs:,} jobs, one transaction each, {f['submit_s']:.1f} s"),
        (store, "placements per second of tick time", f"{f['placements_per_s']:,.0f} jobs/s",
         f"{jobs:,} placed in {f['ticks']} ticks, {f['tick_s_total']:.1f} s of ticking"),
        (store, f"first tick: empty cluster, queue {jobs:,} deep", f"{first_placed} placed",
         f"in {first_s * 1000:.0f} ms: {first_placed / first_s:,.0f} placements/s"),
        (store, "ticks per second (all ticks)", f"{f['ticks_per_s']:,.1f}",
         f"mean {f['mean_tick_ms']:.1f} ms, max {f['max_tick_ms']:.0f} ms"),
        (store, f"mean tick, queue {top} deep", f"{depth[top]:.1f} ms",
         f"{f['ticks_by_depth'][top]} ticks"),
    ]  # fmt: skip
    for key in sorted(depth, key=lambda k: -int(k.split("-")[0].replace(",", ""))):
        if key != top:
            rows.append((store, f"mean tick, queue {key} deep", f"{depth[key]:.1f} ms",
                         f"{f['ticks_by_depth'][key]} ticks"))  # fmt: skip
    heads, heads_s = f["big_head_ticks"], f["big_head_s"]
    rows += [
        (store, f"{BIG_GANG}-node gangs started", f"{f['big_gangs_started']} of {f['big_gangs']}",
         "no starvation"),
        (store, f"{BIG_GANG}-node gang: head of queue to placed",
         f"max {max(heads)} ticks, {max(heads_s):.2f} s" if heads else "none queued",
         f"median {statistics.median(heads)} ticks; s = the scheduler's own tick time"
         if heads else "too few --jobs for a gang of this size"),
        (store, "jobs placed out of queue order", str(f["overtakes"]), "strict FIFO, no backfill"),
        (store, "GPUs in use while jobs waited", f"{f['gpu_use']:.0%}",
         "the cost of the head's reservation (no backfill)"),
    ]  # fmt: skip
    for kind, w in sorted(f["waits"].items()):
        note = f"mean {w['mean_wait_ticks']:.0f}; at the head max {w['max_head_ticks']} ticks"
        figure = f"wait, {kind} ({w['jobs']:,} job{'s' if w['jobs'] != 1 else ''})"
        rows.append((store, figure, f"max {w['max_wait_ticks']} ticks", note))
    return rows


def table(rows: list[tuple[str, str, str, str]]) -> str:
    head = ("store", "figure", "value", "note")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]

    def fmt(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([fmt(head), rule, *(fmt(r) for r in rows)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=200, help="nodes (default %(default)s)")
    parser.add_argument("--gpus", type=int, default=8, help="GPUs a node (default %(default)s)")
    parser.add_argument("--jobs", type=int, default=5000, help="jobs queued (default %(default)s)")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("NAIAD_TEST_POSTGRES_URL"),
        help="also run on a scratch database of this PostgreSQL server "
        "(default: $NAIAD_TEST_POSTGRES_URL; none: SQLite only)",
    )
    parser.add_argument("--max-ticks", type=int, default=20_000, help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if args.nodes < BIG_GANG or args.gpus < 1:
        parser.error(
            f"--nodes must be at least {BIG_GANG} (the largest gang) and --gpus at least 1"
        )

    print(
        f"Cluster (simulated): {args.nodes} nodes x {args.gpus} GPUs x {CPUS} CPUs. Queue: "
        f"{args.jobs:,} jobs submitted before the first tick, each running "
        f"{DURATION_TICKS[0]}-{DURATION_TICKS[1]} ticks.\nPolicy (the scheduler's): strict "
        "priority-then-FIFO; the head of the queue holds a reservation on what frees up and "
        "no job behind it starts first (no backfill); a gang is placed whole on distinct "
        "nodes, best fit.\n"
    )
    stores: list[tuple[str, str | None]] = [("SQLite", None)]
    if args.postgres:
        stores.append(("PostgreSQL", args.postgres))
    rows, raw = [], {}
    load = {"before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="naiad-bench-") as tmp:
        for store, admin_url in stores:
            say(f"{store} ...")
            with scratch(admin_url) as url:
                raw[store] = simulate(Path(tmp) / store, url, args)
            load[store] = os.getloadavg()[0]
            rows += rows_for(store, raw[store], args.jobs)
    print(table(rows))
    print(f"\n1-minute load average: {', '.join(f'{k} {v:.2f}' for k, v in load.items())}")
    if args.json is not None:
        meta = machine() | {"args": {k: v for k, v in vars(args).items() if k != "json"}}
        args.json.write_text(json.dumps({"meta": meta, "load": load, "raw": raw}, indent=2))
        say(f"wrote {args.json}")


if __name__ == "__main__":
    sys.exit(main())
