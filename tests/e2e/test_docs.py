"""The README, examples/README.md and docs/*.md run as written, so the docs can't rot.

A fenced block runs when the line just before it is a marker::

    <!-- runs -->                 the block runs, after the page's earlier marked blocks
    <!-- runs after jobs.md -->   ... once that page's marked blocks have run (path from
                                  this page's folder), for a block that needs its job

Mark only what was checked to run. ``bash`` blocks run under ``bash -euo pipefail`` with
the virtualenv's ``naiad`` first on PATH; ``python`` blocks run in this process, sharing
one namespace per page. Every page runs against one live server, from one scratch folder
laid out like the repository's root (``examples/`` copied, ``.venv`` linked), so paths
such as ``data/digits`` mean what they mean to a reader there. The placeholders
``RUN_ID``, ``RUN_A`` and ``RUN_B``, which a reader takes from ``naiad runs ls``, become
the newest and the second newest run.
"""

import contextlib
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import naiad
from naiad.testing.live import LiveServer

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", ROOT / "examples" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(
    r"^<!-- runs(?: after (?P<after>[^>]+?))? -->\n```(?P<lang>\w+)\n(?P<code>.*?)^```",
    re.MULTILINE | re.DOTALL,
)
PLACEHOLDER = re.compile(r"\b(RUN_ID|RUN_A|RUN_B)\b")


@dataclass
class Block:
    page: str
    line: int
    lang: str
    code: str
    after: list[str]


def name(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


def marked(page: Path) -> list[Block]:
    text = page.read_text()
    found = []
    for m in BLOCK.finditer(text):
        after = [
            name((page.parent / p).resolve()) for p in (m["after"] or "").split(",") if p.strip()
        ]
        line = text.count("\n", 0, m.start("code")) + 1
        found.append(Block(name(page), line, m["lang"], m["code"], after))
    return found


BLOCKS = {name(p): marked(p) for p in PAGES}
RUNNABLE = [page for page, blocks in BLOCKS.items() if blocks]


@dataclass
class Tour:
    """The scratch folder, the server, and which pages have run (None: fine)."""

    cwd: Path
    server: LiveServer
    ran: dict[str, str | None] = field(default_factory=dict)
    namespaces: dict[str, dict[str, object]] = field(default_factory=dict)

    def page(self, page: str) -> None:
        if page in self.ran:
            if self.ran[page] is not None:
                pytest.fail(f"{page} failed earlier: {self.ran[page]}")
            return
        self.ran[page] = "it did not finish"
        for block in BLOCKS[page]:
            for needed in block.after:
                assert needed in BLOCKS, f"{page}:{block.line} runs after {needed}: no such page"
                self.page(needed)
            try:
                self.block(block)
            except BaseException as exc:
                self.ran[page] = f"{block.page}:{block.line}: {exc}"
                raise
        self.ran[page] = None

    def block(self, block: Block) -> None:
        where = f"{block.page}:{block.line}"
        if block.lang == "python":
            namespace = self.namespaces.setdefault(block.page, {})
            with contextlib.chdir(self.cwd):
                exec(compile(block.code, where, "exec"), namespace)  # our own docs
            return
        assert block.lang in ("bash", "sh"), f"{where}: cannot run a {block.lang} block"
        code = PLACEHOLDER.sub(self.placeholder, block.code)
        env = self.server.environ()
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env["PATH"]])
        out = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", code],
            cwd=self.cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert out.returncode == 0, (
            f"{where} exited {out.returncode}:\n{code}\n"
            f"--- stdout\n{out.stdout[-3000:]}\n--- stderr\n{out.stderr[-3000:]}"
        )

    def placeholder(self, m: re.Match[str]) -> str:
        runs = naiad.Client().runs.list(limit=2)
        assert len(runs) == 2, f"{m[0]} needs two runs on the server; it has {len(runs)}"
        return runs[1].id if m[0] == "RUN_B" else runs[0].id


@pytest.fixture(scope="module")
def tour(live: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Tour:
    cwd = tmp_path_factory.mktemp("reader")
    shutil.copytree(
        ROOT / "examples", cwd / "examples", ignore=shutil.ignore_patterns("__pycache__")
    )
    (cwd / ".venv").symlink_to(sys.prefix)
    return Tour(cwd, live)


def test_readme_opens_with_the_two_commands() -> None:
    first = re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)[0]
    lines = first.splitlines()
    assert lines[0].startswith("make quickstart") and lines[1].startswith("make test")


def test_the_tours_are_marked_to_run() -> None:
    readme = BLOCKS["README.md"]
    assert {b.lang for b in readme} == {"python", "bash"} and len(readme) >= 3, readme
    commands = [line for b in readme for line in b.code.splitlines() if line.startswith("naiad ")]
    assert len(commands) >= 8, "the README's CLI tour is missing"
    for page in ("docs/jobs.md", "docs/models.md", "docs/sdk.md", "examples/README.md"):
        assert BLOCKS[page], f"{page} has no block marked <!-- runs -->"


@pytest.mark.parametrize("page", RUNNABLE)
def test_page_runs_as_written(page: str, tour: Tour, client_env: LiveServer) -> None:
    tour.page(page)


def test_examples_docstrings_name_data_the_examples_make(
    tour: Tour, client_env: LiveServer
) -> None:
    """Each example's `naiad train` line names its own folder, data that examples/README.md
    makes, and every channel the script reads."""
    tour.page("examples/README.md")
    for script in sorted((ROOT / "examples").glob("*/train.py")):
        doc = script.read_text().split('"""')[1].replace("\\\n", " ")
        line = next(x for x in doc.splitlines() if x.strip().startswith("naiad train"))
        args = shlex.split(line)
        source = args[args.index("--source") + 1]
        assert source == f"examples/{script.parent.name}", f"{script}: --source {source}"
        inputs = dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "--input")
        for channel, path in inputs.items():
            folder = tour.cwd / path
            assert folder.is_dir() and any(folder.iterdir()), (
                f"{script}'s docstring reads --input {channel}={path}, which examples/README.md "
                "does not make"
            )
        code = script.read_text()
        needed = set(re.findall(r'channel\("(\w+)"\)', code))
        needed |= {c.lower() for c in re.findall(r"SM_CHANNEL_(\w+)", code)}
        assert needed <= set(inputs), f"{script}'s docstring leaves out {needed - set(inputs)}"
