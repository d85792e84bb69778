"""The README's tour runs as written, so the docs can't rot."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import naiad
from naiad.testing.live import LiveServer

README = Path(__file__).parents[2] / "README.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_opens_with_the_two_commands() -> None:
    first = blocks("bash")[0].splitlines()
    assert first[0].startswith("make quickstart") and first[1].startswith("make test")


def test_tour_runs(client_env: LiveServer) -> None:
    """The SDK block (twice, so compare has two runs), then every CLI line of the tour."""
    for _ in range(2):
        for code in blocks("python"):
            exec(compile(code, str(README), "exec"), {})  # our own README
    runs = naiad.Client().runs.list(experiment="tour")
    assert len(runs) == 2 and all(r.status == "Completed" for r in runs)
    ids = {"RUN_ID": runs[0].id, "RUN_A": runs[0].id, "RUN_B": runs[1].id}
    commands = [
        line.split("#")[0].strip()
        for block in blocks("bash")
        for line in block.splitlines()
        if line.startswith("naiad ")
    ]
    assert len(commands) >= 5, "the README's CLI tour is missing"
    for command in commands:
        for placeholder, value in ids.items():
            command = command.replace(placeholder, value)
        args = [sys.executable, "-m", "naiad.cli.main", *shlex.split(command)[1:]]
        out = subprocess.run(
            args, env=client_env.environ(), capture_output=True, text=True, cwd=client_env.home
        )
        assert out.returncode == 0, f"{command}: {out.stderr}"
