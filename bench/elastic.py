"""Elastic jobs on the local executor: what being elastic costs with no fault, and what a
lost host and its return cost, measured on a live server through the SDK.

    make bench-elastic            # or: python bench/elastic.py --json bench/results/elastic.json

The job is ``tests/e2e/jobs/elastic.py``: DDP over however many workers the round has,
a fixed global batch of 32 (``DynamicBatch``), a checkpoint every 5 steps, ``--steps``
optimiser steps of ``--step-s`` each (the pause stands in for a real step's compute).

1. No fault. The same job as a fixed 2-host job (``nodes=2``: torchrun's static
   rendezvous, the baseline) and as an elastic one (``nodes="1:2"``): seconds from
   submit to Completed. The elastic job starts on one host, is granted the second at
   the scheduler's next tick, and its first round waits 3 s for more hosts after the
   first (torchrun's last call), so it may cost a few seconds, not a share of the run.
2. A host lost and back. The elastic job again; once its run has logged ``--kill-at``
   steps, host algo-2's agent and workers are SIGKILLed (a lost machine). The figures:
   seconds from the kill to the world of one worker reporting its round (its resize
   event's time), the step it resumed from next to the last step the run had on the
   server at the kill (which lags training by up to a second of steps), seconds from the
   host's return
   (``NAIAD_ELASTIC_REJOIN_S`` after the kill) to the world of two again, and the
   whole job's seconds against the no-fault elastic run.
"""

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import Row, Sections, say

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "tests" / "e2e" / "jobs"
REJOIN_S = 15.0


@dataclass(frozen=True)
class Sizes:
    steps: int = 400
    step_s: float = 0.05
    kill_at: int = 100


def _submit(client: Any, name: str, nodes: int | str, sizes: Sizes) -> Any:
    hp = {"steps": sizes.steps, "step_s": sizes.step_s, "checkpoint_every": 5}
    return client.training_jobs.create(
        name=name, entrypoint="elastic.py", source_dir=SOURCE, nodes=nodes, hyperparameters=hp
    )


def _wall(job: Any) -> float:
    done = job.wait(timeout=600)
    if done.status != "Completed":
        raise RuntimeError(f"{job.name}: {done.status} {done.status_reason}")
    return (done.ended_at - done.created_at).total_seconds()


def _latest_step(client: Any, run_id: str) -> int:
    summary = client.runs.get(run_id).metrics.get("loss")
    return -1 if summary is None else summary.step


def _kill_host(home: Path, job: str, host: str) -> None:
    import psutil

    from naiad.core.home import HomeLayout
    from naiad.executors.supervisor.workdir import WorkDir, read_json

    state = read_json(WorkDir(HomeLayout(home).jobs / job).state_file) or {}
    agent = psutil.Process(state["hosts"][host])
    for p in [*agent.children(recursive=True), agent]:
        os.kill(p.pid, signal.SIGKILL)


def measure(sizes: Sizes) -> dict[str, Any]:
    import naiad
    from naiad.testing.live import LiveServer

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="naiad-bench-elastic-") as tmp:
        server = LiveServer(home=Path(tmp) / "home", env={"NAIAD_ELASTIC_REJOIN_S": str(REJOIN_S)})
        server.start(timeout=60)
        try:
            client = naiad.Client(url=server.url, token=server.token)
            say("a fixed 2-host job")
            out["fixed_s"] = _wall(_submit(client, "fixed", 2, sizes))
            say("an elastic 1:2 job, no fault")
            out["elastic_s"] = _wall(_submit(client, "elastic", "1:2", sizes))
            say("an elastic 1:2 job, algo-2 lost and back")
            job = _submit(client, "lossy", "1:2", sizes)
            while _latest_step(client, job.job.run_id) < sizes.kill_at:
                if job.refresh().status in ("Failed", "Stopped", "Completed"):
                    raise RuntimeError(f"the job ended before step {sizes.kill_at}")
                time.sleep(0.1)
            killed_step = _latest_step(client, job.job.run_id)
            _kill_host(server.home, "lossy", "algo-2")
            killed_at = time.time()
            out["lossy_s"] = _wall(job)
            events = job.refresh().events
            shrink = next(e for e in events if (e.from_workers, e.to_workers) == (2, 1))
            grow = next(e for e in events if (e.from_workers, e.to_workers) == (1, 2))
            out["events"] = [e.model_dump(mode="json") for e in events]
            out["reform_s"] = shrink.at.timestamp() - killed_at
            out["killed_step"], out["resumed_step"] = killed_step, shrink.step
            out["rejoin_s"] = grow.at.timestamp() - (killed_at + REJOIN_S)
            loss = client.runs.metric_history(job.job.run_id, "loss")
            out["steps_once"] = loss.steps.tolist() == list(range(1, sizes.steps + 1))
        finally:
            server.stop()
    return out


def rows_of(r: dict[str, Any], sizes: Sizes) -> list[Row]:
    ok = r["steps_once"]
    return [
        Row("no fault", "submit to Completed", "s", r["elastic_s"], r["fixed_s"], False,
            "within 5 s", r["elastic_s"] - r["fixed_s"] <= 5.0, "elastic 1:2 vs fixed 2"),
        Row("host lost", "kill to the 1-worker round", "s", r["reform_s"], None, False,
            "<= 15 s", r["reform_s"] <= 15.0),
        Row("host lost", "the step the world resumed from", "step", r["resumed_step"],
            r["killed_step"], True, "", None, "baseline: the run's last step at the kill"),
        Row("host back", "return to the 2-worker round", "s", r["rejoin_s"], None, False,
            "<= 15 s", r["rejoin_s"] <= 15.0, f"return = kill + {REJOIN_S:g} s"),
        Row("host lost", "submit to Completed", "s", r["lossy_s"], r["elastic_s"], False,
            "", None, "vs the no-fault elastic run"),
        Row("host lost", "each step's metrics once", "", 1.0 if ok else 0.0, None, True,
            f"steps 1..{sizes.steps}", ok),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    sizes = Sizes()
    sections = Sections()
    result = sections.measure("elastic", measure, sizes)
    rows = rows_of(result, sizes) if result else []
    if result:
        print(json.dumps(result["events"], indent=1), file=sys.stderr)
    sections.report(rows, "fixed / baseline", args.json, sizes, _versions)


def _versions() -> dict[str, str]:
    import torch

    return {"torch": torch.__version__}


if __name__ == "__main__":
    main()
