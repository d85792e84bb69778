"""Training benchmark: the digits CNN bare vs as a Naiad job, job latencies, DDP, Keras.

In one run, on this machine:

1. Throughput. ``bench/jobs/train_digits.py`` trains the digits CNN (``bench/digits_cnn.py``)
   for a fixed number of steps of 64 samples, once bare (``--bare``: plain torch in a
   subprocess) and once as a Naiad job that logs ``loss`` every step and ``acc`` every 50
   steps to its run. Each side times its own loop (after 10 warm-up steps), so process
   start, imports and data loading are not counted. Bare runs and job runs alternate; the
   figure is the median of each, and the ratio job / bare must be >= 0.97. Because other
   work on a small shared machine moves wall-clock figures by more than 3%, the loop also
   measures Naiad's own cost in the job process (time inside ``ctx.log_metrics``, CPU of
   threads other than the training thread), and the benchmark samples the CPU the server
   and the job's supervisor use meanwhile.
2. Latency. Small jobs are submitted and polled every 20 ms: submit (just before
   ``create()``) to the first time the job reads ``Running``, and submit to the first time
   its run has a metric. Median of 3, with where the time goes (the server's transitions,
   the supervisor's launch time, and the script's own clock readings).
3. DDP. The same script with ``processes_per_node=2`` (torchrun, gloo, DDP, per-rank batch
   64, each rank its half of every global batch of 128) against ``processes_per_node=1``,
   both as Naiad jobs, in global samples/s.

4. Lightning. ``bench/jobs/lightning_fit.py`` fits the same CNN with PyTorch Lightning,
   logging ``loss`` every step, once with Naiad's ``NaiadLogger`` (to the live server,
   through the SDK's pipeline) and once with Lightning's ``CSVLogger`` (a local file), in
   fresh processes, alternating: the seconds ``fit`` took, median of each. The ratio
   CSV / Naiad must be >= 0.97 (skipped without ``naiad[lightning]``).
5. Keras. ``examples/keras-tabular/train.py`` (a tf.keras SageMaker TensorFlow script, run
   unchanged) on the rows its ``make_data.make`` writes, once bare (``python train.py``
   with the variables a TensorFlow job sets, no Naiad) and once as a 1-node Naiad job,
   whose runner adds Naiad's Keras callback to ``fit`` and ``evaluate`` (epoch metrics,
   and batch metrics every 10th batch), alternating. The figure is the training time by
   Keras's own clock, read from the lines the script prints (``verbose=2``: each epoch's
   train batches and validation, ``...ms/epoch``), summed over epochs 2 to the last: the
   job runs the example as a user would, so nothing wraps it, and its log has no
   timestamps. Epoch 1 (graph tracing, printed in whole seconds), ``evaluate`` and the
   callback's once-per-fit start (its run and params) are not in it; what runs every
   batch is. Median of each; bare / job must be >= 0.97. As for throughput, a steadier
   figure beside it: a third run per round, bare under ``bench/jobs/keras_callback.py``,
   adds the same callback in-process and times what it costs (Keras's batch hooks, the
   callback, its sender thread) as a share of ``fit`` + ``evaluate``. Informational:
   submit to Completed against the bare process's wall time. Skipped without
   ``naiad[tensorflow]``.

Every process runs torch with 1 thread (the fastest for this tiny model on 2 cores); the
Keras processes run TensorFlow with its default threads, as a job does.
"""

import argparse
import contextlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from _common import Row, Sections, say

from naiad.core.home import HomeLayout
from naiad.core.status import Status

BENCH = Path(__file__).resolve().parent
SCRIPT = "train_digits.py"
MARK = re.compile(r"BENCH_RESULT (\{.*\})")
POLL_S = 0.02  # latency polls
WAIT_POLL_S = 1.0  # while a throughput job runs: rarely, to add little load of our own
JOB_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class Sizes:
    steps: int = 3000  # per rank: 8-15 s of loop here, depending on the machine's other load
    rounds: int = 3  # bare, 1-process job and 2-process job, alternating
    latency_jobs: int = 3
    latency_steps: int = 600  # long enough that the first metric arrives while training
    threads: int = 1
    acc_every: int = 50
    keras_rows: int = 4000  # 57 batches of 64 an epoch, ~0.2 s here
    keras_epochs: int = 20  # epochs 2-20: ~4 s of fit by Keras's clock


QUICK = Sizes(steps=200, rounds=1, latency_jobs=1, latency_steps=300, keras_epochs=3)
SECTIONS = ("throughput", "latency", "lightning", "keras")
KERAS_EXAMPLE = BENCH.parent / "examples" / "keras-tabular"
KERAS_EPOCH = re.compile(r"(\d+)/\d+ - \d+s - .*? - (\d+)(s|ms|us)/epoch")
KERAS_TEST = re.compile(r"workers \d+ test loss ([0-9.]+)")


def result_of(text: str) -> dict[str, Any]:
    """The last ``BENCH_RESULT {...}`` line (in a job log it may start ``[rank0]``)."""
    found = MARK.findall(text)
    if not found:
        raise RuntimeError(f"no BENCH_RESULT line in the output:\n{text[-2000:]}")
    return json.loads(found[-1])


def stage_source(root: Path) -> Path:
    """``bench/jobs`` plus the shared ``digits_cnn.py``: what the job snapshots and runs."""
    source = root / "source"
    shutil.copytree(BENCH / "jobs", source, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(BENCH / "digits_cnn.py", source / "digits_cnn.py")
    return source


# -- the two ways to train ------------------------------------------------------------


def lightning_loggers(env: dict[str, str], rounds: int) -> dict[str, list[float]]:
    """``fit`` seconds with NaiadLogger and with CSVLogger, alternating fresh processes."""
    script = str(BENCH / "jobs" / "lightning_fit.py")
    out: dict[str, list[float]] = {"naiad": [], "csv": []}
    for _ in range(rounds):
        for logger in ("naiad", "csv"):
            done = subprocess.run(
                [sys.executable, script, "--logger", logger],
                capture_output=True,
                text=True,
                timeout=JOB_TIMEOUT_S,
                env=env,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(f"{logger} exited {done.returncode}:\n{done.stderr[-2000:]}")
            out[logger].append(result_of(done.stdout)["fit_s"])
    return out


def keras_data(root: Path, rows: int) -> dict[str, Path]:
    """The example's own generator (``make_data.make``): ``train`` and ``test`` CSV folders."""
    spec = importlib.util.spec_from_file_location("make_data", KERAS_EXAMPLE / "make_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make(root / "keras-data", rows=rows)


def keras_result(text: str, epochs: int) -> dict[str, Any]:
    """Keras's clock from the example's output: each epoch's seconds (the ``verbose=2`` line
    ending ``- 208ms/epoch - 4ms/step``, 1 ms resolution under a second), their sum from
    epoch 2, and the test loss (the same seed gives the same loss both ways)."""
    scale = {"s": 1.0, "ms": 1e-3, "us": 1e-6}
    found = KERAS_EPOCH.findall(text)
    test = KERAS_TEST.findall(text)
    if len(found) != epochs or not test:
        raise RuntimeError(f"{len(found)} of {epochs} epoch lines in the output:\n{text[-2000:]}")
    epoch_s = [int(n) * scale[unit] for _, n, unit in found]
    return {
        "epoch_s": epoch_s,
        "fit_s": sum(epoch_s[1:]),
        "epoch_batches": int(found[0][0]),
        "test_loss": float(test[-1]),
    }


def keras_process(
    data: dict[str, Path], epochs: int, naiad_env: dict[str, str] | None = None
) -> dict[str, Any]:
    """``python train.py --epochs N`` in the example's folder, with what a TensorFlow job's
    process gets that the script reads or TensorFlow heeds, and no Naiad; with
    ``naiad_env`` (the server's address), under ``bench/jobs/keras_callback.py``, which adds
    Naiad's callback as a job's runner does and times what it costs."""
    argv = [sys.executable, "train.py", "--epochs", str(epochs)]
    if naiad_env is not None:
        argv.insert(1, str(BENCH / "jobs" / "keras_callback.py"))
    with tempfile.TemporaryDirectory(prefix="naiad-bench-keras-") as model_dir:
        env = {
            **os.environ,
            "SM_CHANNEL_TRAIN": str(data["train"]),
            "SM_CHANNEL_TEST": str(data["test"]),
            "SM_MODEL_DIR": model_dir,
            "TF_USE_LEGACY_KERAS": "1",
            "TF_CPP_MIN_LOG_LEVEL": "1",
            "OMP_NUM_THREADS": str(os.cpu_count() or 1),  # a 1-process job's
            "PYTHONUNBUFFERED": "1",
            **(naiad_env or {}),
        }
        t0 = time.perf_counter()
        done = subprocess.run(
            argv,
            cwd=KERAS_EXAMPLE,
            env=env,
            capture_output=True,
            text=True,
            timeout=JOB_TIMEOUT_S,
            check=False,
        )
        wall_s = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"{argv[1]} exited {done.returncode}:\n{done.stderr[-2000:]}")
    result = keras_result(done.stdout, epochs) | {"wall_s": wall_s}
    return result if naiad_env is None else result | {"cost": result_of(done.stdout)}


def run_bare(sizes: Sizes) -> dict[str, Any]:
    argv = [sys.executable, str(BENCH / "jobs" / SCRIPT), "--bare"]
    argv += ["--steps", str(sizes.steps), "--threads", str(sizes.threads)]
    argv += ["--acc_every", str(sizes.acc_every)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=JOB_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"bare run exited {done.returncode}:\n{done.stderr[-2000:]}")
    return result_of(done.stdout)


def cpu_s(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return times.user + times.system


class Jobs:
    """Submits the script as Naiad jobs and remembers them, so none outlives the benchmark."""

    def __init__(self, client: Any, source: Path, home: Path, server_pid: int) -> None:
        self.client = client
        self.source = source
        self.jobs_dir = HomeLayout(home).jobs  # the supervisor's files are under <name>/
        self.server = psutil.Process(server_pid)
        self.handles: list[Any] = []
        self.count = 0

    def submit(self, tag: str, steps: int, sizes: Sizes, processes: int = 1) -> Any:
        self.count += 1
        handle = self.client.training_jobs.create(
            name=f"bench-{tag}-{self.count}",
            entrypoint=SCRIPT,
            source_dir=self.source,
            experiment="bench-training",
            hyperparameters={
                "steps": steps,
                "threads": sizes.threads,
                "acc_every": sizes.acc_every,
            },
            processes_per_node=processes,
        )
        self.handles.append(handle)
        return handle

    def submit_keras(self, data: dict[str, Path], epochs: int) -> Any:
        """The Keras example as a user submits it: ``train.py`` from its own folder, 1 node."""
        self.count += 1
        handle = self.client.training_jobs.create(
            name=f"bench-keras-{self.count}",
            entrypoint="train.py",
            source_dir=KERAS_EXAMPLE,
            experiment="bench-training",
            hyperparameters={"epochs": epochs},
            inputs={channel: str(folder) for channel, folder in data.items()},
        )
        self.handles.append(handle)
        return handle

    def supervisor_cpu_s(self, name: str) -> float | None:
        """CPU seconds of the job's supervisor so far, found by its pid file (None once gone).

        Not by command line: a warm supervisor's names no job, and the server's next warm
        standby, importing torch meanwhile, has the same one.
        """
        try:
            pid = int((self.jobs_dir / name / "supervisor.pid").read_text().split()[0])
            return cpu_s(psutil.Process(pid))
        except (OSError, ValueError, IndexError, psutil.Error):
            return None

    def finish(self, handle: Any, probe: dict[str, float] | None = None) -> dict[str, Any]:
        """Wait for the job to complete; its result line from the log.

        With ``probe``, also sample the server's and the supervisor's CPU time meanwhile
        (every second, so the supervisor's last second is missed).
        """
        result = result_of(self.completed_log(handle, probe))
        if probe is not None:
            wall = time.perf_counter() - probe["t0"]
            result["server_cpu_share"] = (cpu_s(self.server) - probe["server_cpu_s"]) / wall
            result["supervisor_cpu_share"] = probe["supervisor_cpu_s"] / wall
        return result

    def completed_log(self, handle: Any, probe: dict[str, float] | None = None) -> str:
        """Wait for the job to end (polled every second); its log, or why it did not complete."""
        deadline = time.monotonic() + JOB_TIMEOUT_S
        first: float | None = None  # a warm supervisor's imports predate the job: not counted
        while not Status((job := handle.refresh()).status).terminal:
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job.name} still {job.status} after {JOB_TIMEOUT_S} s")
            if probe is not None and (now := self.supervisor_cpu_s(job.name)) is not None:
                first = now if first is None else first
                probe["supervisor_cpu_s"] = now - first
            time.sleep(WAIT_POLL_S)
        log = "".join(handle.logs())
        if job.status != "Completed":
            raise RuntimeError(f"job {job.name} {job.status}: {job.status_reason}\n{log[-2000:]}")
        return log

    def run(self, tag: str, sizes: Sizes, processes: int = 1) -> dict[str, Any]:
        """Run one job to its end; with the server's and supervisor's CPU share of its life."""
        probe = {"t0": time.perf_counter(), "server_cpu_s": cpu_s(self.server)}
        probe["supervisor_cpu_s"] = 0.0
        return self.finish(self.submit(tag, sizes.steps, sizes, processes), probe)

    def stop_all(self) -> None:
        for handle in self.handles:
            try:
                if not Status(handle.status).terminal:
                    handle.stop()
                    handle.wait(timeout=30, poll=0.2)
            except Exception as exc:  # the server may already be gone; say so and go on
                say(f"could not stop {handle.name}: {exc}")


# -- the sections ---------------------------------------------------------------------


def throughput(jobs: Jobs, sizes: Sizes) -> dict[str, list[dict[str, Any]]]:
    """Rounds of bare, 1-process job, 2-process job: neighbours in time share the noise."""
    out: dict[str, list[dict[str, Any]]] = {"bare": [], "job1": [], "job2": []}
    for i in range(sizes.rounds):
        say(f"round {i + 1}/{sizes.rounds}: bare ...")
        out["bare"].append(run_bare(sizes))
        say(f"round {i + 1}/{sizes.rounds}: job, 1 process ...")
        out["job1"].append(jobs.run("tp", sizes))
        say(f"round {i + 1}/{sizes.rounds}: job, 2 processes (DDP) ...")
        out["job2"].append(jobs.run("ddp", sizes, processes=2))
        say(
            "  samples/s: bare {:,.0f}, job {:,.0f}, DDP {:,.0f}".format(
                *(out[k][-1]["samples_per_s"] for k in ("bare", "job1", "job2"))
            )
        )
    return out


def latency_once(jobs: Jobs, sizes: Sizes) -> dict[str, float]:
    """Seconds from just before ``create()`` to each milestone (wall clock, this machine).

    It first waits for the server's warm standby, as a job submitted to an idle server
    finds it (a burst of submissions starts the jobs after the first cold).
    """
    client = jobs.client
    deadline = time.monotonic() + 60
    while not client.health().get("warm_start") and time.monotonic() < deadline:
        time.sleep(0.2)
    wall0, t0 = time.time(), time.perf_counter()
    handle = jobs.submit("lat", sizes.latency_steps, sizes)
    out = {"create_returned": time.perf_counter() - t0}
    deadline = t0 + JOB_TIMEOUT_S
    while ("running" not in out or "first_metric" not in out) and time.perf_counter() < deadline:
        if "running" not in out:
            status = handle.status
            if status in ("Running", "Completed"):
                out["running"] = time.perf_counter() - t0
            elif Status(status).terminal:
                break
        if "first_metric" not in out and client.runs.get(handle.job.run_id).metrics:
            out["first_metric"] = time.perf_counter() - t0
        time.sleep(POLL_S)
    result = jobs.finish(handle)
    job = handle.job
    marks = {t.status: t.at.timestamp() - wall0 for t in job.transitions}
    state = json.loads((jobs.jobs_dir / job.name / "state.json").read_text())
    out |= {
        "server_created": job.created_at.timestamp() - wall0,
        "server_starting": marks.get("Starting", float("nan")),
        "server_running": marks.get("Running", float("nan")),
        "process_launched": state["started_at"] - wall0,
        "script_top": result["t_script"] - wall0,
        "torch_imported": result["t_torch"] - wall0,
        "imports_done": result["t_imports"] - wall0,
        "data_ready": result["t_ready"] - wall0,
        "model_built": result["built_at"] - wall0,
        "first_step_done": result["first_step_at"] - result["first_log_seconds"] - wall0,
        "first_step_logged": result["first_step_at"] - wall0,
    }
    return out


def latency(jobs: Jobs, sizes: Sizes) -> list[dict[str, float]]:
    runs = []
    for i in range(sizes.latency_jobs):
        say(f"latency job {i + 1}/{sizes.latency_jobs} ...")
        runs.append(latency_once(jobs, sizes))
        say(
            "  submit to Running {running:.2f} s, to first metric {first_metric:.2f} s".format(
                **runs[-1]
            )
        )
    return runs


def keras_job(jobs: Jobs, data: dict[str, Path], epochs: int) -> dict[str, Any]:
    """One Keras job: Keras's clock from its log, and submit (just before ``create()``) to
    the server's Completed transition."""
    wall0 = time.time()
    handle = jobs.submit_keras(data, epochs)
    result = keras_result(jobs.completed_log(handle), epochs)
    marks = {t.status: t.at.timestamp() - wall0 for t in handle.job.transitions}
    return result | {"wall_s": marks.get("Completed", float("nan"))}


def server_cpu(jobs: Jobs, fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """``fn(*args)``, with the server's CPU seconds meanwhile (idle ticks, metric ingest)."""
    before = cpu_s(jobs.server)
    return fn(*args) | {"server_cpu_s": cpu_s(jobs.server) - before}


def keras_fit(
    jobs: Jobs, env: dict[str, str], root: Path, sizes: Sizes
) -> dict[str, list[dict[str, Any]]]:
    """Rounds of the Keras example bare, as a job, and bare with the callback timed
    in-process: neighbours in time share the noise."""
    data = keras_data(root, sizes.keras_rows)
    epochs = sizes.keras_epochs
    runs: dict[str, tuple[str, Callable[..., dict[str, Any]], tuple[Any, ...]]] = {
        "bare": ("bare", keras_process, (data, epochs)),
        "job": ("job", keras_job, (jobs, data, epochs)),
        "timed": ("bare with the callback, timed", keras_process, (data, epochs, env)),
    }
    out: dict[str, list[dict[str, Any]]] = {kind: [] for kind in runs}
    for i in range(sizes.rounds):
        for kind, (label, fn, args) in runs.items():
            say(f"round {i + 1}/{sizes.rounds}: {label} ...")
            out[kind].append(server_cpu(jobs, fn, *args))
        bare, job = (out[k][-1]["fit_s"] for k in ("bare", "job"))
        say(f"  fit from epoch 2, by Keras's clock: bare {bare:.3f} s, job {job:.3f} s")
    return out


# -- the table ------------------------------------------------------------------------


def derived(r: dict[str, Any]) -> dict[str, Any]:
    """Where a run's loop time went: per step, and Naiad's own share of it."""
    per_step_ms = 1000 / r["steps"]
    others_s = r["cpu_seconds"] - r["thread_cpu_seconds"]  # the metric sender, gloo's threads
    return r | {
        "others": others_s / r["seconds"],
        "cost": (r["log_seconds"] + others_s) / r["seconds"],
        "log_us": r["log_seconds"] / r["steps"] * 1e6,
        "step_ms": r["seconds"] * per_step_ms,
        "thread_ms": r["thread_cpu_seconds"] * per_step_ms,
        "others_ms": others_s * per_step_ms,
    }


def median_of(records: list[dict[str, Any]], key: str) -> float:
    values = [r[key] for r in records if key in r]
    return statistics.median(values) if values else float("nan")


def rows_for(
    tp: dict[str, list[dict[str, Any]]], lat: list[dict[str, float]], sizes: Sizes
) -> list[Row]:
    rows: list[Row] = []
    if tp:
        tp = {kind: [derived(r) for r in records] for kind, records in tp.items()}
        bare, job1, job2 = (median_of(tp[k], "samples_per_s") for k in ("bare", "job1", "job2"))
        pairs = [
            j["samples_per_s"] / b["samples_per_s"]
            for b, j in zip(tp["bare"], tp["job1"], strict=True)
        ]
        ddp = [
            j2["samples_per_s"] / j1["samples_per_s"]
            for j1, j2 in zip(tp["job1"], tp["job2"], strict=True)
        ]
        ratio = job1 / bare
        ms = {
            (k, m): median_of(tp[k], m) for k in tp for m in ("step_ms", "thread_ms", "others_ms")
        }
        job_cost, bare_cost = (median_of(tp[k], "cost") for k in ("job1", "bare"))
        estimate = 1 - (job_cost - bare_cost)
        log_us, bare_log_us = (median_of(tp[k], "log_us") for k in ("job1", "bare"))
        others, bare_others = (100 * median_of(tp[k], "others") for k in ("job1", "bare"))
        server, supervisor = (
            100 * median_of(tp["job1"], key) for key in ("server_cpu_share", "supervisor_cpu_share")
        )
        rows += [
            Row("Throughput", "digits CNN: Naiad job (logs every step) vs bare loop", "samples/s",
                job1, bare, True, ">= 0.97x", ratio >= 0.97,
                f"ratio {ratio:.3f}; median of {sizes.rounds} each, {sizes.steps} steps; "
                "per-round ratios " + ", ".join(f"{p:.3f}" for p in pairs)),
            Row("Throughput", "the same, from Naiad's own cost inside the job process", "ratio",
                estimate, None, True, ">= 0.97x", estimate >= 0.97,
                f"1 - extra share of the loop: ctx.log_metrics {log_us:.1f} us/step "
                f"(bare no-op {bare_log_us:.1f}) + other threads' CPU {others:.2f}% "
                f"(bare {bare_others:.2f}%), as if all of it stopped training"),
            Row("Throughput", "Naiad server's CPU while a 1-process job runs", "% of a core",
                server, None, False,
                note="scheduler ticks, metric ingest, this benchmark's status polls (1 s)"),
            Row("Throughput", "the job's supervisor's CPU while it runs", "% of a core",
                supervisor, None, False, note="its watch loop wakes every 0.1 s"),
            Row("DDP", "2-process DDP vs 1-process job (global samples/s)", "samples/s",
                job2, job1, True,
                note="baseline: the 1-process job; per-round speedups "
                + ", ".join(f"{p:.2f}" for p in ddp)
                + f"; a step, rank 0: {ms['job2', 'step_ms']:.1f} ms wall (1 process "
                f"{ms['job1', 'step_ms']:.1f}), training thread on CPU "
                f"{ms['job2', 'thread_ms']:.1f} ms (1 process {ms['job1', 'thread_ms']:.1f}), "
                f"gloo threads {ms['job2', 'others_ms']:.1f} ms CPU"),
        ]  # fmt: skip
    if lat:
        m = {key: median_of(lat, key) for key in lat[0]}
        n = len(lat)
        rows += [
            Row("Latency", "submit to Running", "s", m["running"], None, False, "< 1 s",
                m["running"] < 1, f"median of {n}, polled every 20 ms; "
                f"server's Running transition at {m['server_running']:.2f} s"),
            Row("Latency", "submit to first metric", "s", m["first_metric"], None, False, "< 3 s",
                m["first_metric"] < 3, f"median of {n}, polled every 20 ms"),
        ]  # fmt: skip
        milestones = [
            ("create() returned (source upload + POST)", "create_returned"),
            ("scheduler marked it Starting", "server_starting"),
            ("supervisor launched the training process", "process_launched"),
            ("script's first line ran (python start)", "script_top"),
            ("torch imported", "torch_imported"),
            ("naiad.runtime imported", "imports_done"),
            ("digits loaded (sklearn import + load_digits)", "data_ready"),
            ("model + optimizer built (torch.optim imports torch._dynamo)", "model_built"),
            ("first step computed", "first_step_done"),
            (
                "first ctx.log_metrics returned (starts the SDK: client, sender)",
                "first_step_logged",
            ),
            ("metric visible on the server", "first_metric"),
        ]
        # One job's milestones (the median one by first metric), so the steps add up.
        typical = sorted(lat, key=lambda r: r["first_metric"])[len(lat) // 2]
        previous = 0.0
        for label, key in milestones:
            at = typical[key]
            rows.append(
                Row("Latency: where it goes", label, "s", at, None, False,
                    note=f"{at - previous:+.2f} s after the line above"),
            )  # fmt: skip
            previous = at
    return rows


def keras_cost(cost: dict[str, float]) -> dict[str, float]:
    """The callback's share of fit + evaluate, as if all of it stopped training, and Keras's
    part of the batch hooks (the other callbacks' batch hooks, the calls)."""
    spent = cost["hook_s"] + cost["callback_other_s"] + cost["sender_cpu_s"]
    return cost | {
        "share": spent / cost["fit_s"],
        "keras_s": cost["hook_s"] - cost["callback_batch_s"],
    }


def keras_rows(kr: dict[str, list[dict[str, Any]]], sizes: Sizes) -> list[Row]:
    """The fit by Keras's clock, bare / job held to 0.97; whole-job time beside it."""
    bare, job = (median_of(kr[k], "fit_s") for k in ("bare", "job"))
    pairs = [b["fit_s"] / j["fit_s"] for b, j in zip(kr["bare"], kr["job"], strict=True)]
    epoch_batches = kr["bare"][0]["epoch_batches"]
    batches = epoch_batches * (sizes.keras_epochs - 1)  # in the figure: from epoch 2
    per_batch_us = (job - bare) / batches * 1e6
    batch_ms = bare / batches * 1e3
    costs = [keras_cost(r["cost"]) for r in kr["timed"]]
    estimate = 1 - median_of(costs, "share")
    all_batches = epoch_batches * sizes.keras_epochs  # the in-process figures': every epoch
    us = {k: median_of(costs, k) / all_batches * 1e6 for k in ("keras_s", "callback_batch_s")}
    other_ms, sender_ms = (median_of(costs, k) * 1e3 for k in ("callback_other_s", "sender_cpu_s"))
    server_s = median_of(kr["timed"], "server_cpu_s") - median_of(kr["bare"], "server_cpu_s")
    server_share = 100 * server_s / median_of(costs, "fit_s")
    losses = ", ".join(f"{r['test_loss']:.4f}" for r in kr["bare"] + kr["job"])
    bare_wall, job_wall = (median_of(kr[k], "wall_s") for k in ("bare", "job"))
    return [
        Row("Keras", "tabular example fit, Naiad job (its callback) vs bare", "s",
            job, bare, False, ">= 0.97", bare / job >= 0.97,
            f"bare / job {bare / job:.3f}; Keras's clock, epochs 2-{sizes.keras_epochs} "
            f"({batches} batches); median of {sizes.rounds} each; per-round ratios "
            + ", ".join(f"{p:.3f}" for p in pairs)
            + f"; {per_batch_us:+.0f} us a batch of {batch_ms:.2f} ms; test losses {losses}"),
        Row("Keras", "the same, from the callback's cost inside a bare process", "ratio",
            estimate, None, True, ">= 0.97", estimate >= 0.97,
            f"1 - share of fit + evaluate: Keras's batch hooks and their calls "
            f"{us['keras_s']:.0f} us/batch, the callback's batch method "
            f"{us['callback_batch_s']:.0f} us/batch, its start and epochs {other_ms:.0f} ms, "
            f"sender thread CPU {sender_ms:.0f} ms (in 10 ms ticks); median of {sizes.rounds}; "
            f"not in it, the server's extra CPU ingesting the points: {server_s * 1e3:.0f} ms "
            f"({server_share:.1f}% of fit + evaluate)"),
        Row("Keras", "submit to Completed vs the bare process's wall time", "s",
            job_wall, bare_wall, False,
            note="informational: the job adds the upload, the launch, the runner (after the "
            "script, the model's manifest: it loads and runs the saved model), the last flush"),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few steps, one round: a smoke test")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--only", choices=SECTIONS, action="append", help="run this section alone (repeatable)"
    )
    args = parser.parse_args()
    sizes = QUICK if args.quick else Sizes()
    wanted = set(args.only or SECTIONS)
    keras_missing = [m for m in ("tensorflow", "tf_keras") if importlib.util.find_spec(m) is None]

    import naiad
    from naiad.testing.live import LiveServer

    sections = Sections()
    raw, errors, measure = sections.raw, sections.errors, sections.measure

    with tempfile.TemporaryDirectory(prefix="naiad-bench-training-") as tmp:
        root = Path(tmp)
        source = stage_source(root)
        server = LiveServer(home=root / "home")
        raw["server_start_s"] = server.start()
        jobs: Jobs | None = None
        tp: dict[str, list[dict[str, Any]]] | None = None
        lat: list[dict[str, float]] | None = None
        lt: dict[str, list[float]] | None = None
        kr: dict[str, list[dict[str, Any]]] | None = None
        try:
            client = naiad.Client(url=server.url, token=server.token)
            jobs = Jobs(client, source, server.home, server.process.pid)
            if "throughput" in wanted:
                tp = measure("throughput", throughput, jobs, sizes)
            if "latency" in wanted:
                lat = measure("latency", latency, jobs, sizes)
            if "lightning" in wanted and importlib.util.find_spec("lightning") is not None:
                env = {**server.environ(), "NAIAD_TOKEN": server.token}
                lt = measure("lightning", lightning_loggers, env, sizes.rounds)
            if "keras" in wanted and not keras_missing:
                env = {**server.environ(), "NAIAD_TOKEN": server.token}
                kr = measure("keras", keras_fit, jobs, env, root, sizes)
            elif "keras" in wanted:
                say(f"keras: skipped, {' and '.join(keras_missing)} not installed")
        finally:
            if jobs is not None:
                jobs.stop_all()
            server.stop()

    rows = rows_for(tp or {}, lat or [], sizes)
    if lt:
        naiad_s, csv_s = statistics.median(lt["naiad"]), statistics.median(lt["csv"])
        figure = "digits CNN fit, NaiadLogger vs CSVLogger (every step)"
        met = csv_s / naiad_s >= 0.97
        rows.append(Row("Lightning", figure, "s", naiad_s, csv_s, False, ">= 0.97", met))
    if kr:
        rows += keras_rows(kr, sizes)
    elif "keras" in wanted and keras_missing:
        why = f"{' and '.join(keras_missing)} not installed: naiad[tensorflow]"
        rows.append(Row("Keras", "skipped", "", None, None, False, note=why))
    for name, error in errors.items():
        rows.append(Row(name, f"{name} FAILED", "", None, None, True, note=error))
    sections.report(rows, "baseline", args.json, sizes, _versions)


def _versions() -> dict[str, str]:
    """torch's, and TensorFlow's and tf_keras's where installed (from their metadata: no
    4-second import for a version)."""
    import torch

    versions = {"torch": str(torch.__version__)}
    for name in ("tensorflow", "tf_keras"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[name] = importlib.metadata.version(name)
    return versions


if __name__ == "__main__":
    main()
