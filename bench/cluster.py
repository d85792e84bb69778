"""Cluster benchmark: a 2-node DDP job through Naiad's Ray executor vs Ray Train's TorchTrainer.

One local Ray cluster for both (``naiad.testing.ray_cluster``: a head with no CPU and three
worker nodes of one CPU each, all on this machine), one live Naiad server with
``NAIAD_EXECUTOR=ray`` on it, and this process as Ray Train's driver. The job is
``bench/jobs/cluster_ddp.py``: the digits CNN, one process per node, gloo, per-rank batch
64, deterministic. Naiad runs it with ``client.training_jobs.create(nodes=2, max_retries=1)``;
Ray Train with ``TorchTrainer(ScalingConfig(num_workers=2, resources_per_worker={"CPU": 1},
placement_strategy="STRICT_SPREAD"), RunConfig(failure_config=FailureConfig(max_failures=1)))``.

Every run measures, from the job's own wall-clock events:

1. submit to first step: from just before ``create()`` / ``trainer.fit()`` to the end of
   rank 0's first training step;
2. steady samples/s: global samples/s over the steps after a warm-up, on rank 0's clock;
3. recovery: after the checkpoint is durable (Naiad: mirrored to the artifact store; Ray
   Train: registered by its controller), the node of rank 1 is killed; from the kill to
   the end of the first step of the retried attempt, which resumes from the checkpoint.
   Then a node is added back, so every run starts on three idle workers.

Rounds alternate which side goes first; figures are medians. The nodes share this
machine's cores: it is a cluster simulation, and throughput is bounded by the machine.
"""

import argparse
import concurrent.futures
import contextlib
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from _common import Row, Sections, say

BENCH = Path(__file__).resolve().parent
SCRIPT = "cluster_ddp.py"
MARK = re.compile(r"CLUSTER_EVENT (\{.*\})")
PLACED = re.compile(r"algo-2=127\.0\.0\.1 \(node (\w+)\)")
JOB_TIMEOUT_S = 240.0
POLL_S = 0.1  # the job's log and its checkpoint: when to kill, not a figure


@dataclass(frozen=True)
class Sizes:
    warmup: int = 20
    timed: int = 800  # per rank: 4-8 s of steps here, with both ranks on two shared cores
    hold: int = 300  # steps after the checkpoint; paced in a first attempt
    hold_step_s: float = 0.05  # the window to kill a node in: hold x this (15 s)
    rounds: int = 3
    threads: int = 1

    def hyperparameters(self) -> dict[str, Any]:
        keys = ("warmup", "timed", "hold", "hold_step_s", "threads")
        return {k: v for k, v in asdict(self).items() if k in keys}


QUICK = Sizes(timed=200, hold=200, rounds=1)


def events_of(text: str) -> list[dict[str, Any]]:
    return [json.loads(m) for m in MARK.findall(text)]


def one(events: list[dict[str, Any]], kind: str, rank: int = 0, **match: Any) -> dict[str, Any]:
    """The first event of ``kind`` from ``rank`` with the given fields."""
    for e in events:
        if e["kind"] == kind and e["rank"] == rank and all(e.get(k) == v for k, v in match.items()):
            return e
    raise RuntimeError(f"no {kind} event of rank {rank} {match or ''} in the job's output")


def figures(events: list[dict[str, Any]], t_submit: float, t_kill: float) -> dict[str, Any]:
    """The three figures and the milestones of both attempts, in seconds from their origin."""
    first = one(events, "first_step", resumed=False)
    start0 = one(events, "start")
    ready0 = one(events, "ready", resumed_from=0)
    retry = one(events, "first_step", resumed=True)
    starts = [e for e in events if e["kind"] == "start" and e["rank"] == 0]
    start1 = starts[-1] if len(starts) > 1 else {}
    ready1 = [e for e in events if e["kind"] == "ready" and e["rank"] == 0][-1]
    done = [e for e in events if e["kind"] == "done"]
    steady = one(events, "steady")
    return {
        "first_step_s": first["t"] - t_submit,
        "samples_per_s": steady["samples_per_s"],
        "step_ms": 1000 * steady["seconds"] / steady["steps"],
        "step_cpu_ms": 1000 * steady["thread_cpu_s"] / steady["steps"],
        "nice": steady["nice"],
        "recovery_s": retry["t"] - t_kill,
        "checksums": sorted({e["checksum"] for e in done}),
        "start": milestones(start0, ready0, first, t_submit),
        "retry": milestones(start1, ready1, retry, t_kill),
    }


def milestones(
    start: dict[str, Any], ready: dict[str, Any], step: dict[str, Any], origin: float
) -> dict[str, Any]:
    """When rank 0's processes were created, and each step of its way to the first step."""
    procs = [(name, t - origin) for name, t in step.get("procs", [])]
    since = {k: start.get(f"t_{k}") for k in ("entry", "torch", "group")}  # None: not taken
    return {
        "procs": procs,
        **{k: None if t is None else t - origin for k, t in since.items()},
        "data": ready["t_data"] - origin,
        "model": ready["t_model"] - origin,
        "first_step": step["t"] - origin,
    }


# -- the cluster ----------------------------------------------------------------------


class Cluster:
    """The local cluster, seen from the driver: kill a node, add one back, wait until idle."""

    def __init__(self, local: Any) -> None:
        import ray

        self.local = local
        self.ray = ray
        self.dead_at: float | None = None  # when Ray marked the last killed node dead
        self._watch: threading.Thread | None = None

    def kill(self, node_prefix: str) -> float:
        """Kill the worker node whose id starts with ``node_prefix``; the wall clock then.

        A thread notes when Ray's GCS marks the node dead (``dead_after``): both sides'
        recoveries may wait for it, or for their own timeouts."""
        node = next((n for n in self.local.workers if n.node_id.startswith(node_prefix)), None)
        if node is None:
            raise RuntimeError(f"no worker node {node_prefix} in the cluster")
        self.dead_at = None
        t_kill = time.time()
        self.local.remove(node)
        self._watch = threading.Thread(target=self._note_death, args=(node.node_id,), daemon=True)
        self._watch.start()
        return t_kill

    def _note_death(self, node_id: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not any(n["NodeID"] == node_id and n["Alive"] for n in self.ray.nodes()):
                self.dead_at = time.time()
                return
            time.sleep(0.1)

    def dead_after(self, t_kill: float) -> float | None:
        """Seconds from the kill until Ray marked the node dead (None if it never did)."""
        if self._watch is not None:
            self._watch.join()
        return None if self.dead_at is None else self.dead_at - t_kill

    def restore(self, timeout: float = 120.0) -> None:
        """Add nodes back to three, then wait until all three are alive with their CPU free."""
        while len(self.local.workers) < 3:
            self.local.workers.append(self.local.add())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            alive = [n for n in self.ray.nodes() if n["Alive"] and n["Resources"].get("CPU")]
            if len(alive) == 3 and self.ray.available_resources().get("CPU", 0) >= 3:
                return
            time.sleep(0.2)
        raise TimeoutError("the cluster did not come back to three idle workers")


class LogWatch:
    """A Naiad job's log, read on from where it was, with when each of Naiad's own lines
    (``[naiad] ...``, which carry no time) was first seen here: a profile of the gang's
    steps to within the server's sync (each scheduler tick) and this poll."""

    def __init__(self, jobs: Any, name: str) -> None:
        self.jobs, self.name = jobs, name
        self.offset, self.text, self.ended = 0, "", False
        self.naiad_lines: list[tuple[float, str]] = []

    def poll(self) -> None:
        while True:
            chunk = self.jobs.read_logs(self.name, self.offset)
            now = time.time()
            self.offset = chunk.offset
            self.text += chunk.text
            for line in chunk.text.splitlines():
                if "[naiad]" in line:
                    self.naiad_lines.append((now, line))
            self.ended = chunk.complete
            if not chunk.text or chunk.complete:
                return


# -- the two sides --------------------------------------------------------------------


class NaiadSide:
    """The job through Naiad: the SDK against a live server with the Ray executor."""

    name = "Naiad"

    def __init__(self, client: Any, source: Path, home: Path, cluster: Cluster) -> None:
        self.client, self.source, self.home, self.cluster = client, source, home, cluster
        self.count = 0
        self.handles: list[Any] = []

    def run(self, sizes: Sizes) -> dict[str, Any]:
        self.count += 1
        name = f"cluster-{self.count}"
        mirror = self.home / "artifacts" / "jobs" / name / "checkpoints"
        t_submit = time.time()
        handle = self.client.training_jobs.create(
            name=name,
            entrypoint=SCRIPT,
            source_dir=self.source,
            experiment="bench-cluster",
            hyperparameters=sizes.hyperparameters(),
            nodes=2,
            max_retries=1,
        )
        self.handles.append(handle)
        log = LogWatch(self.client.training_jobs, name)
        deadline = time.monotonic() + JOB_TIMEOUT_S
        placed: re.Match[str] | None = None
        while placed is None or not any(mirror.glob("ckpt-*.pt")):
            if time.monotonic() > deadline or log.ended:
                raise RuntimeError(f"{name} never checkpointed: {handle.job.status_reason}")
            log.poll()
            placed = placed or PLACED.search(log.text)
            time.sleep(POLL_S)
        t_kill = self.cluster.kill(placed[1])
        while not log.ended:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} still {handle.status} after {JOB_TIMEOUT_S} s")
            log.poll()
            time.sleep(POLL_S)
        job = handle.refresh()
        if job.status != "Completed" or job.attempt != 1:
            raise RuntimeError(f"{name}: {job.status} attempt {job.attempt}: {job.status_reason}")
        out = figures(events_of(log.text), t_submit, t_kill)
        out["retry"]["node_dead"] = self.cluster.dead_after(t_kill)
        out["server"] = {t.status: t.at.timestamp() - t_submit for t in job.transitions}
        out["log_seen"] = [(round(t - t_submit, 2), line) for t, line in log.naiad_lines]
        out["t_kill"] = t_kill - t_submit
        return out

    def stop_all(self) -> None:
        for handle in self.handles:
            try:
                if handle.status not in ("Completed", "Failed", "Stopped"):
                    handle.stop()
                    handle.wait(timeout=30, poll=0.5)
            except Exception as exc:  # the server may already be gone; say so and go on
                say(f"could not stop {handle.name}: {exc}")


class RayTrainSide:
    """The same loop as a ``TorchTrainer``, with this process as the driver."""

    name = "Ray Train"

    def __init__(self, root: Path, cluster: Cluster) -> None:
        self.root, self.cluster = root, cluster
        self.count = 0

    def run(self, sizes: Sizes) -> dict[str, Any]:
        import cluster_ddp
        from ray.train import FailureConfig, RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer

        self.count += 1
        events = self.root / f"ray-events-{self.count}.jsonl"
        run = self.root / "ray-results" / f"cluster-{self.count}"
        snapshot = run / "checkpoint_manager_snapshot.json"
        trainer = TorchTrainer(
            cluster_ddp.ray_train_loop,
            train_loop_config=sizes.hyperparameters() | {"events": str(events)},
            scaling_config=ScalingConfig(
                num_workers=2,
                use_gpu=False,
                resources_per_worker={"CPU": 1},
                placement_strategy="STRICT_SPREAD",
            ),
            run_config=RunConfig(
                name=run.name,
                storage_path=str(run.parent),
                failure_config=FailureConfig(max_failures=1),
            ),
        )
        fit: concurrent.futures.Future[Any] = concurrent.futures.Future()
        worker = threading.Thread(target=fitting, args=(trainer, fit), daemon=True)
        t_submit = time.time()
        worker.start()  # fit() blocks; this thread watches for the checkpoint meanwhile
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while not registered(snapshot):
            if time.monotonic() > deadline or fit.done():
                fit.result(timeout=0)  # its error, if it failed
                raise RuntimeError("the Ray Train run never checkpointed")
            time.sleep(POLL_S)
        t_kill = self.cluster.kill(one(events_of(events.read_text()), "start", rank=1)["node"])
        result = fit.result(timeout=JOB_TIMEOUT_S)
        if result.error is not None:
            raise RuntimeError(f"the Ray Train run failed: {result.error}")
        out = figures(events_of(events.read_text()), t_submit, t_kill)
        out["retry"]["node_dead"] = self.cluster.dead_after(t_kill)
        return out


def fitting(trainer: Any, fit: concurrent.futures.Future[Any]) -> None:
    """``trainer.fit()`` into ``fit``, in a daemon thread: a run that hangs fails the
    benchmark by its timeout instead of holding the process at exit."""
    try:
        fit.set_result(trainer.fit())
    except BaseException as exc:
        fit.set_exception(exc)


def registered(snapshot: Path) -> bool:
    """Whether Ray Train's controller has taken a checkpoint in: ``report()`` returning is
    not enough, the controller collects reports when it next polls the workers (every 2 s),
    and a retry resumes only from a checkpoint it has registered."""
    try:
        return json.loads(snapshot.read_text()).get("latest_checkpoint_result") is not None
    except (OSError, ValueError):
        return False


# -- the table ------------------------------------------------------------------------


def run_rounds(
    sides: list[Any], cluster: Cluster, sizes: Sizes, out: dict[str, list[dict[str, Any]]]
) -> None:
    """Rounds of both sides, the first side alternating; the cluster restored after each run.
    ``out`` gets each run as it ends, so a failed round keeps the runs before it."""
    out.update({side.name: [] for side in sides})
    for i in range(sizes.rounds):
        for side in sides if i % 2 == 0 else sides[::-1]:
            say(f"round {i + 1}/{sizes.rounds}: {side.name} ...")
            load = os.getloadavg()[0]
            result = side.run(sizes) | {"load_before": load}
            out[side.name].append(result)
            say(
                f"  first step {result['first_step_s']:.2f} s, "
                f"{result['samples_per_s']:,.0f} samples/s, "
                f"recovered in {result['recovery_s']:.2f} s"
            )
            cluster.restore()


def median_of(records: list[dict[str, Any]], key: Callable[[dict[str, Any]], float]) -> float:
    values = [key(r) for r in records]
    return statistics.median(values) if values else float("nan")


def rows_for(results: dict[str, list[dict[str, Any]]], sizes: Sizes) -> list[Row]:
    naiad, ray = results.get("Naiad", []), results.get("Ray Train", [])
    if not naiad or not ray:
        return []

    def each(records: list[dict[str, Any]], key: str, fmt: str = "{:.1f}") -> str:
        return ", ".join(fmt.format(r[key]) for r in records)

    def pair(key: str, fmt: str = "{:.1f}") -> tuple[float, float, str]:
        n, r = (median_of(x, lambda rec: rec[key]) for x in (naiad, ray))
        return n, r, f"Naiad {each(naiad, key, fmt)}; Ray Train {each(ray, key, fmt)}"

    def ms(records: list[dict[str, Any]]) -> str:
        wall, cpu = (statistics.median(r[k] for r in records) for k in ("step_ms", "step_cpu_ms"))
        return f"{wall:.1f} ms ({cpu:.1f} on CPU, nice {records[0]['nice']})"

    sums = {c for rec in naiad + ray for c in rec["checksums"]}
    agree = "the same final weights on every run" if len(sums) == 1 else f"{len(sums)} checksums"
    n_first, r_first, first_note = pair("first_step_s")
    n_tp, r_tp, tp_note = pair("samples_per_s", "{:,.0f}")
    n_rec, r_rec, rec_note = pair("recovery_s")
    n = sizes.rounds
    rows = [
        Row("Cluster", "submit to first training step", "s", n_first, r_first, False,
            note=f"median of {n}; {first_note}"),
        Row("Cluster", "steady global samples/s (2 nodes, DDP, gloo)", "samples/s", n_tp, r_tp,
            True, note=f"{sizes.timed} steps of 2 x 64 after {sizes.warmup}; {tp_note}; "
            f"a step on rank 0: Naiad {ms(naiad)}, Ray Train {ms(ray)}"),
        Row("Cluster", "node of rank 1 killed to first step of the retry", "s", n_rec, r_rec,
            False, note=f"resumes from the checkpoint; {rec_note}; {agree}"),
    ]  # fmt: skip
    rows += where_it_goes(naiad, ray)
    return rows


PROCESS_STEPS = [
    ("Ray actor process created (Naiad: NodeHost; Ray Train: its worker)", "actor"),
    ("supervisor process created (Naiad only)", "supervisor"),
    ("training process created (Naiad: the script; Ray Train: the worker)", "own"),
    ("script / train function began", "entry"),
    ("torch imported (Ray Train: before the function)", "torch"),
    ("process group ready (Ray Train: before the function)", "group"),
    ("digits loaded (sklearn import + load_digits)", "data"),
    ("model, optimizer and DDP built (torch.optim imports torch._dynamo)", "model"),
    ("first step done", "first_step"),
]
NAIAD_LINES = {  # the lines of Naiad's job log that mark the gang's steps
    "start": [("the gang placed", r"attempt 0: the gang is placed")],
    "retry": [
        ("rank 0's host failed (gloo lost its peer)", r"host algo-\d failed"),
        ("the coordinator ends the other host", r"ending the other hosts"),
        ("the coordinator retries the gang", r"retrying the whole gang"),
        ("a new gang placed", r"attempt 1: the gang is placed"),
    ],
}


def where_it_goes(naiad: list[dict[str, Any]], ray: list[dict[str, Any]]) -> list[Row]:
    """Rank 0's milestones in the median run of each side (by the figure they explain), and
    for Naiad when its log's lines were first seen (at most ~0.4 s late: the server copies
    the log each scheduler tick, this benchmark polls every 0.1 s)."""
    rows: list[Row] = []

    def add(label: str, text: str, naiad_s: float | None, ray_s: float | None = None) -> None:
        rows.append(Row(label, text, "s", naiad_s, ray_s, False, comparable=False))

    for phase, figure, label in (
        ("start", "first_step_s", "Start: where it goes (s after submit)"),
        ("retry", "recovery_s", "Recovery: where it goes (s after the kill)"),
    ):
        n_run = sorted(naiad, key=lambda r: r[figure])[len(naiad) // 2]
        n, r = n_run[phase], sorted(ray, key=lambda r: r[figure])[len(ray) // 2][phase]
        origin = n_run["t_kill"] if phase == "retry" else 0.0
        if phase == "start":
            starting = n_run["server"]["Starting"]
            add(label, "Naiad server: the job is Starting (scheduler took it)", starting)
        else:
            add(label, "Ray marks the killed node dead (its GCS)", n["node_dead"], r["node_dead"])
        for text, pattern in NAIAD_LINES[phase]:
            lines = n_run["log_seen"]
            seen = [t - origin for t, line in lines if t >= origin and re.search(pattern, line)]
            add(label, f"Naiad log: {text} (seen)", seen[0] if seen else None)
        for text, key in PROCESS_STEPS:
            add(label, text, at(n, key), at(r, key))
    return rows


def at(milestones: dict[str, Any], key: str) -> float | None:
    """A milestone, or a process's creation: ``own`` is rank 0's, ``actor`` the Ray actor it
    runs in or under, ``supervisor`` Naiad's supervisor between them."""
    procs = milestones["procs"]
    found = {
        "own": procs[:1],
        "actor": [p for p in procs if p[0].startswith("ray::")],
        "supervisor": [p for p in procs if "supervisor" in p[0]],
    }.get(key)
    if found is None:
        return milestones.get(key)
    return float(found[0][1]) if found else None


def stage_source(root: Path) -> Path:
    """The job's script and ``digits_cnn.py`` beside it: what the job snapshots."""
    source = root / "source"
    source.mkdir()
    shutil.copy2(BENCH / "jobs" / SCRIPT, source / SCRIPT)
    shutil.copy2(BENCH / "digits_cnn.py", source / "digits_cnn.py")
    return source


def run_all(sizes: Sizes, sections: Sections, results: dict[str, list[dict[str, Any]]]) -> None:
    """Start the cluster, the server and the driver; run the rounds; tear it all down."""
    import logging

    from naiad.testing.ray_cluster import LOOPBACK_ENV, LocalCluster

    os.environ.update(LOOPBACK_ENV)  # Ray reads it at import: the driver stays on 127.0.0.1

    import ray
    import ray.cloudpickle

    import naiad
    from naiad.testing.live import LiveServer

    sys.path.insert(0, str(BENCH / "jobs"))
    import cluster_ddp
    import digits_cnn

    for module in (cluster_ddp, digits_cnn):  # Ray Train's workers cannot import them
        ray.cloudpickle.register_pickle_by_value(module)

    with tempfile.TemporaryDirectory(prefix="naiad-bench-cluster-") as tmp:
        root = Path(tmp)
        source = stage_source(root)
        local = server = naiad_side = None
        try:
            say("starting a Ray cluster: a head and 3 worker nodes of 1 CPU ...")
            local = LocalCluster(workers=3, cpus=1)
            ray.init(address=local.address, logging_level=logging.WARNING, log_to_driver=False)
            cluster = Cluster(local)
            env = {"NAIAD_EXECUTOR": "ray", "NAIAD_RAY_ADDRESS": local.address, **LOOPBACK_ENV}
            server = LiveServer(home=root / "home", env=env)
            sections.raw["server_start_s"] = server.start(timeout=90)
            client = naiad.Client(url=server.url, token=server.token)
            naiad_side = NaiadSide(client, source, server.home, cluster)
            sides = [naiad_side, RayTrainSide(root, cluster)]
            sections.measure("rounds", run_rounds, sides, cluster, sizes, results)
        finally:
            if naiad_side is not None:
                naiad_side.stop_all()
            if server is not None:
                server.stop()
            if ray.is_initialized():
                ray.shutdown()
            if local is not None:
                local.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few steps, one round: a smoke test")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    sizes = QUICK if args.quick else Sizes()

    sections = Sections()
    results: dict[str, list[dict[str, Any]]] = {}
    # Ray's driver prints the raylets' death notices to stdout: keep it for the table.
    with contextlib.redirect_stdout(sys.stderr):
        run_all(sizes, sections, results)
    sections.raw["runs"] = results
    rows = rows_for(results, sizes)
    for name, error in sections.errors.items():
        rows.append(Row(name, f"{name} FAILED", "", None, None, True, note=error))
    sections.report(rows, "Ray Train", args.json, sizes, _versions)


def _versions() -> dict[str, str]:
    import ray
    import torch

    return {"torch": torch.__version__, "ray": ray.__version__}


if __name__ == "__main__":
    main()
