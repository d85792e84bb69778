"""Tuning benchmark: trials per minute, the gap between trials, and the search against Optuna.

In one run, on this machine, against a live ``naiad server`` (SQLite, a temporary home):

1. Trials per minute and the gap. A tuning job of ``--trials`` trials of a near-instant
   objective (``OBJECTIVE`` below: the bowl of ``examples/tuning/objective.py``, one step,
   no sleep) runs with parallel 1 and parallel 2, submitted over HTTP as a user would. For
   each trial after the first ``parallel`` ones, the gap is its job's start (``started_at``,
   the Running transition: when its supervisor launched the script) minus the end
   (``ended_at``) of the trial whose end made room for it (the latest to end before it was
   created). The gap is split into the tuner's reaction (that end to the new trial's
   ``created_at``) and the scheduler and executor's part (``created_at`` to ``started_at``),
   which is split again at the Starting transition (the scheduler handed the job to the
   executor). Where a trial's whole cycle goes comes from the job's transitions, its
   supervisor's ``state.json`` and clock readings the script prints (its first line,
   ``naiad.runtime`` imported, the SDK's run started, the metric logged, and process exit
   after the SDK's flush, with its CPU time). Each script also says whether it started
   warm (forked from the executor's standby, torch already imported). A thread samples the
   server's children meanwhile (``Watch``): when a standby was importing, and the CPU of
   the server, its children, this benchmark and the rest of the machine.
2. The search against Optuna in-process, same space, objective, sampler and seed, same
   budget, parallel 1. Naiad builds a fresh sampler for each trial, seeded with
   ``(seed * 1_000_003 + number) % 2**32``, on a study rebuilt from the finished trials;
   the "replica" does exactly that with plain Optuna (``create_study`` + ``add_trial`` +
   ``ask``), so its parameters must be Naiad's, trial by trial. "Plain Optuna" is one study
   whose sampler is seeded once, as a user would write it: the quality baseline (best value
   after N trials, and the trial that first reached it, averaged over ``Sizes.seeds`` seeds
   for both in-process forms). Wall time per trial: Naiad's, end to end (the tuning job's
   creation to its last trial's end, over N), against plain Optuna's ``optimize`` of the
   same objective (which takes no time itself: all of it is the search's own cost), and
   against plain Optuna running the objective in a fresh ``python`` per trial.
"""

import argparse
import contextlib
import json
import math
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from _common import Row, Sections, say

from naiad.core.home import HomeLayout
from naiad.core.status import Status

SCRIPT = "objective.py"
MARK = re.compile(r"BENCH_(TIMES|EXIT) (.*)")
WARM_MODULE = "naiad.executors.supervisor.warm"
POLL_S = 0.5
TUNING_TIMEOUT_S = 240.0
SEED = 7
ACTIVATIONS = {"gelu": 0.0, "relu": 0.1, "tanh": 0.3}
SPACE: list[dict[str, Any]] = [
    {"name": "lr", "type": "continuous", "min": 1e-4, "max": 1.0, "scaling": "log"},
    {"name": "width", "type": "integer", "min": 1, "max": 6},
    {"name": "act", "type": "categorical", "values": list(ACTIVATIONS)},
]

# The trial's script: examples/tuning/objective.py's bowl, logged once, with clock readings.
# Its atexit hook is registered before naiad is imported, so it runs after the SDK's flush.
OBJECTIVE = """\
import atexit, json, math, os, sys, time
T_TOP = time.time()
WARM = "torch" in sys.modules  # forked from the warm standby
def on_exit():
    print(f"BENCH_EXIT {time.time():.6f} {sum(os.times()[:2]):.4f}", flush=True)
atexit.register(on_exit)
from naiad import runtime
T_IMPORT = time.time()
ACTIVATIONS = {"gelu": 0.0, "relu": 0.1, "tanh": 0.3}
ctx = runtime.context()
run = ctx.tracking_run()  # the SDK's run: naiad.sdk imported, its sender started
T_RUN = time.time()
hp = ctx.hyperparameters
lr, width, act = hp.get_float("lr"), hp.get_int("width"), hp.get_str("act", "gelu")
final = 1.0 - 0.15 * math.log10(lr / 0.01) ** 2 - 0.05 * (width - 3) ** 2 - ACTIVATIONS[act]
ctx.log_metrics({"score": final}, step=0)
times = {"top": T_TOP, "imported": T_IMPORT, "run": T_RUN, "logged": time.time(), "warm": WARM}
print("BENCH_TIMES " + json.dumps(times), flush=True)
"""


@dataclass(frozen=True)
class Sizes:
    trials: int = 20
    parallel: tuple[int, ...] = (1, 2)
    seeds: int = 20  # in-process quality averages (cheap)


QUICK = Sizes(trials=6, parallel=(1, 2), seeds=3)


def objective(params: dict[str, Any]) -> float:
    """The script's value, computed here for in-process Optuna (the same float expression)."""
    lr, width, act = float(params["lr"]), int(params["width"]), str(params["act"])
    return 1.0 - 0.15 * math.log10(lr / 0.01) ** 2 - 0.05 * (width - 3) ** 2 - ACTIVATIONS[act]


def ts(value: str | None) -> float:
    return float("nan") if value is None else datetime.fromisoformat(value).timestamp()


# -- the live side --------------------------------------------------------------------


class Api:
    """The REST API over HTTP, as any client calls it."""

    def __init__(self, url: str, token: str) -> None:
        self.http = httpx.Client(
            base_url=f"{url}/api/v1", headers={"authorization": f"Bearer {token}"}, timeout=60
        )

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:500]}")
        return response.json()

    def wait_warm(self, timeout: float = 90.0) -> bool:
        """Until the executor's standby is ready, as an idle server's next job finds it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.call("GET", "/health").get("warm_start"):
                return True
            time.sleep(0.2)
        return False


class Watch:
    """The CPU a search costs, and when the executor's warm standby was importing.

    A thread samples the server's children every 0.1 s: each standby (``WARM_MODULE``)
    from its creation until its CPU time stops growing (it has imported torch and waits).
    The CPU of the search: the server's own, and its children's (supervisors and their
    scripts, standbys) within the window, against the whole machine's busy time.
    """

    SAMPLE_S = 0.1

    def __init__(self, server_pid: int) -> None:
        self.server = psutil.Process(server_pid)
        self.standbys: dict[int, dict[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.SAMPLE_S):
            now = time.time()
            try:
                children = self.server.children()
            except psutil.Error:
                continue
            for child in children:
                try:
                    seen = self.standbys.get(child.pid)
                    if seen is None:
                        if WARM_MODULE not in " ".join(child.cmdline()):
                            continue
                        times = child.cpu_times()
                        created = child.create_time()
                        # one found ready counts from its creation to its creation: its
                        # import's end is unknown, and before the search
                        seen = {"created": created, "cpu": times.user + times.system}
                        seen["busy_until"] = created
                        self.standbys[child.pid] = seen
                        continue
                    times = child.cpu_times()
                    cpu = times.user + times.system
                    if cpu > seen["cpu"] + 0.01 and "handed" not in seen:
                        seen["cpu"], seen["busy_until"] = cpu, now
                    if child.children():  # a job's script forked from it: a supervisor now
                        seen.setdefault("handed", now)
                except psutil.Error:
                    continue

    def _cpu(self) -> dict[str, float]:
        own = self.server.cpu_times()
        bench = psutil.Process().cpu_times()
        m = psutil.cpu_times()  # Linux: user and nice include guest time
        busy = m.user + m.nice + m.system + m.irq + m.softirq + m.steal
        return {
            "at": time.time(),
            "server": own.user + own.system,
            "reaped": own.children_user + own.children_system,
            "bench": bench.user + bench.system,
            "busy": busy,
            "steal": m.steal,
        }

    def _children(self) -> dict[int, float]:
        """CPU seconds so far of each live child of the server (a standby, supervisors)."""
        out = {}
        for child in self.server.children():
            with contextlib.suppress(psutil.Error):
                times = child.cpu_times()
                out[child.pid] = times.user + times.system
        return out

    def __enter__(self) -> "Watch":
        self.before = self._cpu()
        self.live_before = self._children()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.after = self._cpu()
        self.live_after = self._children()

    def report(self) -> dict[str, Any]:
        delta = {k: self.after[k] - self.before[k] for k in self.before}
        # The children's CPU within the window: what was reaped, less what the reaped
        # had used before it (the standby's import, usually), plus what the ones still
        # alive used meanwhile.
        before, after = self.live_before, self.live_after
        gone = sum(cpu for pid, cpu in before.items() if pid not in after)
        alive = sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())
        delta["children"] = delta["reaped"] - gone + alive
        imports = [
            {"from": v["created"], "to": v["busy_until"], "cpu": v["cpu"]}
            for v in self.standbys.values()
            if v["created"] >= self.before["at"] - 1.0  # started during the search
        ]
        return {"cpu": delta, "cores": psutil.cpu_count(), "standby_imports": imports}


def upload_source(root: Path, client: Any) -> str:
    source = root / "source"
    source.mkdir()
    (source / SCRIPT).write_text(OBJECTIVE)
    return client.training_jobs.upload_source(source).source_uri


def run_search(
    api: Api,
    server: Any,
    source_uri: str,
    name: str,
    strategy: str,
    trials: int,
    parallel: int,
) -> dict[str, Any]:
    """One tuning job to its end: its trials, each with its job's timeline."""
    warm = api.wait_warm()
    body = {
        "name": name,
        "template": {
            "entrypoint": SCRIPT,
            "source_uri": source_uri,
            "experiment": "bench-tuning",
        },
        "space": SPACE,
        "objective": {"metric": "score", "direction": "maximize"},
        "strategy": strategy,
        "max_trials": trials,
        "parallel": parallel,
        "seed": SEED,
    }
    with Watch(server.process.pid) as watch:
        t0 = time.time()
        api.call("POST", "/tuning-jobs", json=body)
        deadline = time.monotonic() + TUNING_TIMEOUT_S
        while not Status((job := api.call("GET", f"/tuning-jobs/{name}"))["status"]).terminal:
            if time.monotonic() > deadline:
                api.call("POST", f"/tuning-jobs/{name}/stop")
                raise TimeoutError(
                    f"tuning job {name} still {job['status']} after {TUNING_TIMEOUT_S}s"
                )
            time.sleep(POLL_S)
    if job["status"] != "Completed":
        raise RuntimeError(f"tuning job {name} {job['status']}: {job['status_reason']}")
    jobs_dir = HomeLayout(server.home).jobs
    out = []
    for trial in api.call("GET", f"/tuning-jobs/{name}/trials"):
        detail = api.call("GET", f"/jobs/{trial['job']}")
        log = api.call("GET", f"/jobs/{trial['job']}/logs", params={"offset": 0})["text"]
        marks: dict[str, Any] = {}
        for kind, text in MARK.findall(log):
            if kind == "TIMES":
                marks |= json.loads(text)
            else:
                exit_at, cpu = text.split()
                marks |= {"exit": float(exit_at), "cpu": float(cpu)}
        state = json.loads((jobs_dir / trial["job"] / "state.json").read_text())
        at = {t["status"]: ts(t["at"]) for t in detail["transitions"]}
        out.append(
            {
                "number": trial["number"],
                "params": trial["params"],
                "value": trial["value"],
                "outcome": trial["outcome"],
                "created": ts(detail["created_at"]),
                "starting": at.get("Starting", float("nan")),
                "started": ts(detail["started_at"]),
                "ended": ts(detail["ended_at"]),
                "supervisor_finished": state.get("finished_at") or float("nan"),
                "script_top": marks.get("top", float("nan")),
                "script_imported": marks.get("imported", float("nan")),
                "script_run": marks.get("run", float("nan")),
                "script_logged": marks.get("logged", float("nan")),
                "script_exit": marks.get("exit", float("nan")),
                "script_cpu": marks.get("cpu", float("nan")),
                "warm": bool(marks.get("warm")),
            }
        )
    return {
        "name": name,
        "strategy": strategy,
        "parallel": parallel,
        "warm_before": warm,
        "watch": watch.report(),
        "submitted": t0,
        "created": ts(job["created_at"]),
        "ended": ts(job["ended_at"]),
        "trials": sorted(out, key=lambda t: t["number"]),
    }


def importing(search: dict[str, Any], start: float, end: float) -> bool:
    """Whether the executor's standby was importing torch at some time in [start, end]."""
    return any(i["from"] <= end and i["to"] >= start for i in search["watch"]["standby_imports"])


def gaps(search: dict[str, Any]) -> list[dict[str, Any]]:
    """Each trial after the first ``parallel`` ones, against the end that made room for it."""
    trials = search["trials"]
    out = []
    for trial in trials[search["parallel"] :]:
        before = [t for t in trials if t["ended"] <= trial["created"]]
        if not before:
            continue
        prev = max(before, key=lambda t: t["ended"])
        out.append(
            {
                "number": trial["number"],
                "warm": trial["warm"],
                "standby_importing": importing(search, prev["ended"], trial["started"]),
                "gap": trial["started"] - prev["ended"],
                # no trial code runs: the previous script's exit to the next one's first line
                "dead": trial["script_top"] - prev["script_exit"],
                "reaction": trial["created"] - prev["ended"],
                "scheduling": trial["started"] - trial["created"],
                "to_starting": trial["starting"] - trial["created"],
                "starting_to_started": trial["started"] - trial["starting"],
                # the ending trial's side: script's metric logged -> the server saw it end
                "sdk_flush_exit": prev["script_exit"] - prev["script_logged"],
                "exit_to_finished": prev["supervisor_finished"] - prev["script_exit"],
                "finished_to_ended": prev["ended"] - prev["supervisor_finished"],
            }
        )
    return out


def cycle(trial: dict[str, Any]) -> dict[str, float]:
    """One trial's own life, from its creation to the server seeing it end."""
    return {
        "created_to_starting": trial["starting"] - trial["created"],
        "starting_to_started": trial["started"] - trial["starting"],
        "python_start": trial["script_top"] - trial["started"],
        "runtime_import": trial["script_imported"] - trial["script_top"],
        "sdk_start": trial["script_run"] - trial["script_imported"],
        "log": trial["script_logged"] - trial["script_run"],
        "sdk_flush_exit": trial["script_exit"] - trial["script_logged"],
        "exit_to_finished": trial["supervisor_finished"] - trial["script_exit"],
        "finished_to_ended": trial["ended"] - trial["supervisor_finished"],
        "total": trial["ended"] - trial["created"],
    }


def live(sizes: Sizes) -> dict[str, Any]:
    """Start a server, run the searches, stop it."""
    import naiad
    from naiad.testing.live import LiveServer

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="naiad-bench-tuning-") as tmp:
        root = Path(tmp)
        server = LiveServer(home=root / "home")
        out["server_start_s"] = server.start()
        api: Api | None = None
        try:
            client = naiad.Client(url=server.url, token=server.token)
            api = Api(server.url, server.token)
            uri = upload_source(root, client)
            runs = [("tpe", p) for p in sizes.parallel] + [("random", 1)]
            for strategy, parallel in runs:
                name = f"bench-{strategy}-p{parallel}"
                say(f"{name}: {sizes.trials} trials ...")
                search = run_search(api, server, uri, name, strategy, sizes.trials, parallel)
                wall = search["ended"] - search["created"]
                g = [x["gap"] for x in gaps(search)]
                say(
                    f"  {wall:.1f} s, {60 * sizes.trials / wall:.1f} trials/min; gap median "
                    f"{statistics.median(g):.2f} s; "
                    f"{sum(t['warm'] for t in search['trials'])} trials started warm"
                )
                out[name] = search
        finally:
            if api is not None:
                api.http.close()
            server.stop()
    return out


# -- in-process Optuna ----------------------------------------------------------------


def _optuna() -> Any:
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def _distributions() -> dict[str, Any]:
    d = _optuna().distributions
    return {
        "lr": d.FloatDistribution(1e-4, 1.0, log=True),
        "width": d.IntDistribution(1, 6),
        "act": d.CategoricalDistribution(list(ACTIVATIONS)),
    }


def _sampler(strategy: str, seed: int | None) -> Any:
    samplers = _optuna().samplers
    if strategy == "random":
        return samplers.RandomSampler(seed=seed)
    return samplers.TPESampler(seed=seed)


def replica(strategy: str, seed: int, trials: int) -> dict[str, Any]:
    """Naiad's way in plain Optuna: a fresh study and sampler for every trial, seeded by the
    trial's number, holding the finished trials."""
    optuna = _optuna()
    dists = _distributions()
    done: list[tuple[dict[str, Any], float]] = []
    times: list[float] = []
    started = time.perf_counter()
    for number in range(trials):
        study = optuna.create_study(
            direction="maximize",
            sampler=_sampler(strategy, (seed * 1_000_003 + number) % 2**32),
        )
        for params, value in done:
            study.add_trial(
                optuna.trial.create_trial(params=params, distributions=dists, value=value)
            )
        trial = study.ask(fixed_distributions=dists)
        done.append((dict(trial.params), objective(trial.params)))
        times.append(time.perf_counter() - started)
    return {
        "params": [p for p, _ in done],
        "values": [v for _, v in done],
        "seconds": times[-1],
        "times": times,
    }


def plain(strategy: str, seed: int, trials: int) -> dict[str, Any]:
    """Optuna as a user writes it: one study, its sampler seeded once."""
    optuna = _optuna()
    study = optuna.create_study(direction="maximize", sampler=_sampler(strategy, seed))

    def suggest(trial: Any) -> float:
        lr = trial.suggest_float("lr", 1e-4, 1.0, log=True)
        width = trial.suggest_int("width", 1, 6)
        act = trial.suggest_categorical("act", list(ACTIVATIONS))
        return objective({"lr": lr, "width": width, "act": act})

    times: list[float] = []
    started = time.perf_counter()
    study.optimize(
        suggest,
        n_trials=trials,
        callbacks=[lambda _study, _trial: times.append(time.perf_counter() - started)],
    )
    done = study.get_trials(deepcopy=False)
    return {
        "params": [t.params for t in done],
        "values": [t.value for t in done],
        "seconds": times[-1],
        "times": times,
    }


BARE = """
import json, math, sys
p = json.loads(sys.argv[1])
acts = {"gelu": 0.0, "relu": 0.1, "tanh": 0.3}
lr, width = float(p["lr"]), int(p["width"])
final = 1.0 - 0.15 * math.log10(lr / 0.01) ** 2 - 0.05 * (width - 3) ** 2 - acts[p["act"]]
print(repr(final))
"""


def plain_subprocess(strategy: str, seed: int, trials: int) -> dict[str, Any]:
    """Plain Optuna whose objective runs the bowl in a fresh ``python`` per trial: the least
    a search that runs each trial as its own process pays, with no platform around it."""
    optuna = _optuna()
    study = optuna.create_study(direction="maximize", sampler=_sampler(strategy, seed))

    def run(trial: Any) -> float:
        params = {
            "lr": trial.suggest_float("lr", 1e-4, 1.0, log=True),
            "width": trial.suggest_int("width", 1, 6),
            "act": trial.suggest_categorical("act", list(ACTIVATIONS)),
        }
        argv = [sys.executable, "-c", BARE, json.dumps(params)]
        done = subprocess.run(argv, capture_output=True, text=True, check=True)
        return float(done.stdout)

    started = time.perf_counter()
    study.optimize(run, n_trials=trials)
    seconds = time.perf_counter() - started
    return {"values": [t.value for t in study.get_trials(deepcopy=False)], "seconds": seconds}


def first_best(values: list[float]) -> tuple[float, int]:
    """The best value and the (1-based) trial that first reached it."""
    best = max(values)
    return best, values.index(best) + 1


def in_process(sizes: Sizes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for strategy in ("tpe", "random"):
        rep = [replica(strategy, SEED + i, sizes.trials) for i in range(sizes.seeds)]
        pla = [plain(strategy, SEED + i, sizes.trials) for i in range(sizes.seeds)]
        out[strategy] = {"replica": rep, "plain": pla}
        out[strategy]["subprocess"] = plain_subprocess(strategy, SEED, sizes.trials)
    return out


def same_params(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if set(a) != set(b):
        return False
    for key, x in a.items():
        y = b[key]
        if isinstance(x, float) or isinstance(y, float):
            if not math.isclose(float(x), float(y), rel_tol=1e-12):
                return False
        elif x != y:
            return False
    return True


# -- the table ------------------------------------------------------------------------


def med(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return statistics.median(values) if values else float("nan")


def p90(values: list[float]) -> float:
    values = sorted(v for v in values if not math.isnan(v))
    if not values:
        return float("nan")
    return values[min(len(values) - 1, math.ceil(0.9 * len(values)) - 1)]


def _stat(values: list[float]) -> str:
    return f"median {med(values):.2f}, p90 {p90(values):.2f}, n={len(values)}"


def _cpu_note(search: dict[str, Any]) -> str:
    """Where the machine's CPU went while the search ran (seconds of CPU)."""
    watch = search["watch"]
    cpu = watch["cpu"]
    scripts = sum(t["script_cpu"] for t in search["trials"] if not math.isnan(t["script_cpu"]))
    imports = sum(i["cpu"] for i in watch["standby_imports"])
    ours = cpu["server"] + cpu["children"] + cpu["bench"]
    return (
        f"of {watch['cores'] * cpu['at']:.1f} CPU-s ({watch['cores']} cores x {cpu['at']:.1f} s): "
        f"busy {cpu['busy']:.1f}; server {cpu['server']:.1f}, its children "
        f"{cpu['children']:.1f} (trial scripts {scripts:.1f}; standbys started meanwhile "
        f"{imports:.1f} in {len(watch['standby_imports'])}), this benchmark "
        f"{cpu['bench']:.1f}; the rest of the machine {cpu['busy'] - ours:.1f}"
    )


def trial_rows(search: dict[str, Any], n: int) -> list[Row]:
    parallel = search["parallel"]
    sec = f"Trials, parallel {parallel}"
    wall = search["ended"] - search["created"]
    g = gaps(search)

    def col(key: str, keep: Any = None) -> list[float]:
        return [x[key] for x in g if keep is None or keep(x)]

    quiet = col("gap", lambda x: not x["warm"] and not x["standby_importing"])
    busy = col("gap", lambda x: not x["warm"] and x["standby_importing"])
    warm = col("gap", lambda x: x["warm"])
    rows = [
        Row(sec, "trials per minute (TPE, near-instant objective)", "trials/min",
            60 * n / wall, None, True,
            note=f"{n} trials in {wall:.1f} s, tuning job created to ended; "
            f"{sum(t['warm'] for t in search['trials'])} of {n} started warm"),
        Row(sec, "gap: a trial's ended_at to the next one's started_at", "s",
            med(col("gap")), None, False, "< 1 s", med(col("gap")) < 1, _stat(col("gap"))),
        Row(sec, "  started cold, the standby not importing meanwhile", "s",
            med(quiet), None, False, note=_stat(quiet)),
        Row(sec, "  started cold while the standby imported torch", "s",
            med(busy), None, False, note=_stat(busy)),
        Row(sec, "  started warm (forked from the standby)", "s",
            med(warm), None, False, note=_stat(warm)),
        Row(sec, "  tuner: ended_at to the next created_at", "s",
            med(col("reaction")), None, False, note=_stat(col("reaction"))),
        Row(sec, "  scheduler: created_at to Starting", "s",
            med(col("to_starting")), None, False, note=_stat(col("to_starting"))),
        Row(sec, "  executor: Starting to started_at (supervisor up, code staged, launch)",
            "s", med(col("starting_to_started")), None, False,
            note=_stat(col("starting_to_started"))),
        Row(sec, "script to script: one's exit to the next one's first line", "s",
            med(col("dead")), None, False,
            note=f"{_stat(col('dead'))}; the ending trial's supervisor and the scheduler's "
            "poll come before ended_at, python's start after started_at"),
        Row(sec, "CPU while the search ran", "CPU-s", search["watch"]["cpu"]["busy"], None,
            False, note=_cpu_note(search)),
    ]  # fmt: skip
    cycles = [(t["warm"], cycle(t)) for t in search["trials"]]
    labels = [
        ("created_at to Starting (scheduler)", "created_to_starting"),
        ("Starting to started_at (supervisor start, staging)", "starting_to_started"),
        ("started_at to the script's first line (python)", "python_start"),
        ("naiad.runtime imported", "runtime_import"),
        ("the SDK's run started (naiad.sdk imported, sender)", "sdk_start"),
        ("metric logged", "log"),
        ("SDK flush at exit, process gone", "sdk_flush_exit"),
        ("exit to the supervisor's finished_at (uploads, logs)", "exit_to_finished"),
        ("finished_at to the server's ended_at (scheduler poll)", "finished_to_ended"),
        ("a trial's whole life, created_at to ended_at", "total"),
    ]
    for label, key in labels:
        cold = [c[key] for w, c in cycles if not w]
        warm_life = [c[key] for w, c in cycles if w]
        rows.append(
            Row(f"Trial life, parallel {parallel}", label, "s", med(cold), None, False,
                note=f"started cold: {_stat(cold)}; warm: median {med(warm_life):.2f}, "
                f"n={len(warm_life)}"),
        )  # fmt: skip
    return rows


def rows_for(lv: dict[str, Any], ip: dict[str, Any], sizes: Sizes) -> list[Row]:
    rows: list[Row] = []
    n = sizes.trials
    for parallel in sizes.parallel:
        search = lv.get(f"bench-tpe-p{parallel}")
        if search is not None:
            rows += trial_rows(search, n)
    for strategy in ("tpe", "random"):
        search = lv.get(f"bench-{strategy}-p1")
        runs = ip.get(strategy)
        if runs is None:
            continue
        sec = f"Search, {strategy}"
        rep0, pla0, sub = runs["replica"][0], runs["plain"][0], runs["subprocess"]
        if search is not None:
            trials = search["trials"]
            ours = [t["params"] for t in trials]
            values = [t["value"] for t in trials]
            matched = sum(same_params(a, b) for a, b in zip(ours, rep0["params"], strict=False))
            best, at = first_best(values)
            rbest, rat = first_best(rep0["values"])
            per_trial = (search["ended"] - search["created"]) / n
            found_at = trials[at - 1]["ended"] - search["created"]
            rows += [
                Row(sec, "trials with the replica's params, in order", "trials", matched, n,
                    True, f"= {n}", matched == n,
                    "replica: plain Optuna, fresh sampler per trial seeded as Naiad seeds it"),
                Row(sec, f"best value after {n} trials (seed {SEED})", "score", best, rbest,
                    True, note=f"Naiad first reached it at trial {at}, the replica at {rat}"),
                Row(sec, f"best value after {n} trials, vs plain Optuna (seed {SEED})", "score",
                    best, first_best(pla0["values"])[0], True,
                    note=f"plain Optuna first reached its best at trial "
                    f"{first_best(pla0['values'])[1]}"),
                Row(sec, "wall time per trial, end to end", "s", per_trial,
                    pla0["seconds"] / n, False,
                    note=f"baseline: plain Optuna's optimize(), in-process; Naiad takes "
                    f"{per_trial / (pla0['seconds'] / n):,.0f}x as long; the replica "
                    f"{rep0['seconds'] / n * 1000:.1f} ms per trial (rebuilds each time)"),
                Row(sec, "  the same, against Optuna running a fresh python per trial", "s",
                    per_trial, sub["seconds"] / n, False,
                    note=f"baseline: the bowl in `python -c` per trial, no platform around it; "
                    f"Naiad takes {per_trial / (sub['seconds'] / n):,.0f}x as long"),
                Row(sec, "time to best: search start to the best trial's end", "s", found_at,
                    rep0["times"][rat - 1], False,
                    note=f"trial {at} of {n}; baseline: the replica, reaching the same trial; "
                    f"plain Optuna reached its own best (trial "
                    f"{first_best(pla0['values'])[1]}) in "
                    f"{pla0['times'][first_best(pla0['values'])[1] - 1] * 1000:.1f} ms"),
            ]  # fmt: skip
        k = len(runs["plain"])
        rep_best = statistics.mean(first_best(r["values"])[0] for r in runs["replica"])
        pla_best = statistics.mean(first_best(r["values"])[0] for r in runs["plain"])
        rep_at = statistics.mean(first_best(r["values"])[1] for r in runs["replica"])
        pla_at = statistics.mean(first_best(r["values"])[1] for r in runs["plain"])
        rows.append(
            Row(sec, f"mean best after {n} trials over {k} seeds: Naiad's way vs plain", "score",
                rep_best, pla_best, True,
                note=f"in-process; first reached at trial {rep_at:.1f} vs {pla_at:.1f} "
                "on average (the optimum is 1.0)"),
        )  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6 trials: a smoke test")
    parser.add_argument("--trials", type=int, help="trials per tuning job (default 20)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    sizes = QUICK if args.quick else Sizes()
    if args.trials:
        sizes = Sizes(trials=args.trials, parallel=sizes.parallel, seeds=sizes.seeds)

    sections = Sections()
    ip = sections.measure("in-process", in_process, sizes)
    lv = sections.measure("live", live, sizes)
    rows = rows_for(lv or {}, ip or {}, sizes)
    for name, error in sections.errors.items():
        rows.append(Row(name, f"{name} FAILED", "", None, None, True, note=error))
    sections.report(rows, "baseline", args.json, sizes, _versions)


def _versions() -> dict[str, str]:
    import optuna

    return {"optuna": optuna.__version__}


if __name__ == "__main__":
    main()
