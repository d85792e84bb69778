"""`naiad tune` and `naiad tuning` end to end: a live server, the CLI as a subprocess, and
examples/tuning/objective.py as the trials' script."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from naiad.testing.live import LiveServer

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "tuning"
FAST = ["--hp", "steps=4", "--hp", "step_seconds=0.05"]
SPACE = [
    "--space",
    "lr=log:1e-4:1",
    "--space",
    "width=int:1:6",
    "--space",
    "act=cat:relu,gelu,tanh",
]


def naiad(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "naiad.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def env(live: LiveServer) -> dict[str, str]:
    environ = {**live.environ(), "COLUMNS": "200"}
    environ.pop("NAIAD_TOKEN", None)  # found in $NAIAD_HOME/admin_token, as a user's would be
    return environ


def _row(out: str, number: int) -> tuple[str, str]:
    """The best-so-far mark and the outcome in the table row of trial ``number``."""
    rows = re.findall(rf"│ ([* ]) │ +{number} │ (\w+) +│", out)
    assert len(rows) == 1, out
    return rows[0]


def test_tune_follows_the_trials_to_the_best(env: dict[str, str]) -> None:
    args = ["--source", str(EXAMPLE), *SPACE, "--objective", "score:max", *FAST]
    out = ok(
        naiad(
            "tune", "objective.py", *args, "--trials", "4", "--parallel", "2", "--seed", "1",
            "--name", "cli-tune", "--follow", env=env,
        )
    )  # fmt: skip
    assert "Started tuning job cli-tune: 4 trials, 2 at once, tpe, objective score (max)." in out
    assert "cli-tune  Completed" in out and "trials 4/4" in out
    assert "naiad tuning register cli-tune --model NAME" in out
    for number in range(4):
        assert _row(out, number)[1] == "complete"

    shown = json.loads(ok(naiad("tuning", "show", "cli-tune", "--json", env=env)))
    assert shown["status"] == "Completed" and shown["counts"]["complete"] == 4
    best = shown["best"]
    assert set(best["params"]) == {"lr", "width", "act"}
    assert [n for n in range(4) if _row(out, n)[0] == "*"] == [best["number"]]
    trials = json.loads(
        ok(naiad("tuning", "trials", "cli-tune", "--sort", "objective", "--json", env=env))
    )
    assert trials[0]["number"] == best["number"]
    assert best["value"] == max(t["value"] for t in trials)
    assert shown["template"]["experiment"] == "cli-tune"  # the trials' runs are grouped

    listed = json.loads(ok(naiad("tuning", "ls", "--json", env=env)))
    assert "cli-tune" in [j["name"] for j in listed]
    table = ok(naiad("tuning", "show", "cli-tune", env=env))
    assert "space" in table and "log" in table and "relu, gelu, tanh" in table
    assert "has already ended: Completed" in ok(naiad("tuning", "stop", "cli-tune", env=env))


def test_spec_file_then_show_follow(env: dict[str, str], tmp_path: Path) -> None:
    spec = tmp_path / "tune.yaml"
    spec.write_text(
        f"script: objective.py\nsource: {os.path.relpath(EXAMPLE, tmp_path)}\nname: spec-tune\n"
        "space:\n  lr: log:1e-3:1e-1\n  act: [relu, gelu]\n"
        "objective: {metric: score, direction: max}\nstrategy: grid\n"
        "template:\n  hyperparameters: {steps: 2, step_seconds: 0.05}\n"
    )
    # The spec's lr is continuous (no grid); --space makes it a list of values to try.
    started = ok(naiad("tune", "--spec", str(spec), "--space", "lr=cat:0.01,0.1", "--parallel", "4",
                       "--hp", "width=3", env=env))  # fmt: skip
    assert "Started tuning job spec-tune: 4 trials, 4 at once, grid" in started
    out = ok(naiad("tuning", "show", "spec-tune", "--follow", env=env))
    assert "spec-tune  Completed" in out
    trials = json.loads(ok(naiad("tuning", "trials", "spec-tune", "--json", env=env)))
    tried = {(t["params"]["lr"], t["params"]["act"]) for t in trials}
    assert tried == {(0.01, "relu"), (0.01, "gelu"), (0.1, "relu"), (0.1, "gelu")}
    best = json.loads(ok(naiad("tuning", "show", "spec-tune", "--json", env=env)))["best"]
    assert best["params"] == {"lr": 0.01, "act": "gelu"}  # the example's optimum among them


def test_a_failed_search_exits_non_zero_with_its_reason(env: dict[str, str]) -> None:
    result = naiad(
        "tune", "objective.py", "--source", str(EXAMPLE), "--space", "width=int:1:6",
        "--objective", "accuracy:max", "--hp", "lr=0.01", *FAST, "--trials", "2",
        "--parallel", "2", "--max-failed", "2", "--name", "cli-fails", "--follow", env=env,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr.startswith("Error: Tuning job cli-fails failed: 2 trials failed")
    assert "logged no finite 'accuracy'" in result.stderr
    assert "cli-fails  Failed" in result.stdout


def test_bad_strings_are_one_sentence(env: dict[str, str]) -> None:
    result = naiad("tune", "objective.py", "--space", "lr=log:0:1", "--objective", "s:max", env=env)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "Error: --space lr=log:0:1: a log-scaled range needs min > 0 (e.g. log:1e-5:1, or "
        "float:0:1)."
    )
    missing = naiad("tuning", "show", "nope", env=env)
    assert missing.returncode == 1 and "No tuning job named 'nope'" in missing.stderr
