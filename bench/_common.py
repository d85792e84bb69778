"""Small helpers the benchmark scripts share: ports, server processes, timing, the table."""

import contextlib
import json
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Process:
    """A server started in its own process group, polled on a health URL, stopped by its PID."""

    def __init__(self, argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None):
        self.argv = list(argv)
        self.log_path = log_path
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, health_url: str, timeout: float = 120.0) -> float:
        """Start and poll ``health_url`` until it answers 200; returns the seconds it took."""
        with open(self.log_path, "ab") as log:
            started = time.perf_counter()
            self.proc = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        deadline = started + timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{self.argv[:3]} exited early:\n{tail}")
            try:
                if httpx.get(health_url, timeout=0.5).status_code == 200:
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{self.argv[:3]} not healthy in {timeout}s; see {self.log_path}")

    def stop(self) -> None:
        """SIGTERM our child's process group (its workers too); SIGKILL what lingers."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session=True: the group holds only what we started
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            self.proc.wait(5)
        deadline = time.monotonic() + 5  # workers can outlive their parent for a moment
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        self.proc = None


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call."""
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    """Median seconds over ``repeats`` calls."""
    return statistics.median(timed(fn)[0] for _ in range(repeats))


@dataclass
class Row:
    """One figure: Naiad's value next to the baseline's, and the target it is held to."""

    section: str
    figure: str
    unit: str
    naiad: float | None
    baseline: float | None
    higher_is_better: bool
    target: str = ""
    met: bool | None = None
    note: str = ""
    comparable: bool = True  # False when the two sides measured different sizes

    @property
    def ratio(self) -> float | None:
        """How many times better Naiad is (>1 means Naiad wins), whatever the unit's direction."""
        if not self.comparable or not _known(self.naiad) or not _known(self.baseline):
            return None
        return self.naiad / self.baseline if self.higher_is_better else self.baseline / self.naiad


def _known(value: float | None) -> bool:
    """A measured, non-zero number (a failed measurement is None or NaN)."""
    return value is not None and not math.isnan(value) and value != 0


def _num(value: float | None) -> str:
    if value is None or math.isnan(value):
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def table(rows: Sequence[Row], baseline_name: str) -> str:
    """Rows as a Markdown table (readable in a terminal and pasteable into docs)."""
    head = ["section", "figure", "unit", "Naiad", baseline_name, "ratio", "target", "met", "note"]
    body = [
        [
            r.section,
            r.figure,
            r.unit,
            _num(r.naiad),
            _num(r.baseline),
            "-" if r.ratio is None else f"{r.ratio:,.1f}x",
            r.target or "-",
            "-" if r.met is None or not _known(r.naiad) else ("yes" if r.met else "NO"),
            r.note,
        ]
        for r in rows
    ]
    widths = [max(len(line[i]) for line in [head, *body]) for i in range(len(head))]

    def fmt(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([fmt(head), rule, *(fmt(line) for line in body)])


def write_json(path: Path, rows: Sequence[Row], meta: dict[str, Any]) -> None:
    def clean(record: dict[str, Any]) -> dict[str, Any]:
        return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in record.items()}

    records = [clean(asdict(r) | {"ratio": r.ratio}) for r in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": meta, "rows": records}, indent=2))


def machine(**versions: str) -> dict[str, Any]:
    """What the figures were measured on, plus the versions a benchmark names."""
    import platform

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    git = ["git", "rev-parse", "--short", "HEAD"]
    return {
        "cpus": os.cpu_count(),
        "memory_gib": round(mem, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        **versions,
        "git": subprocess.run(git, capture_output=True, text=True, check=False).stdout.strip(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


class Sections:
    """A benchmark's sections: a failed one is reported in the table and the others still
    run; the 1-minute load average is noted before the first and after each."""

    def __init__(self) -> None:
        self.raw: dict[str, Any] = {}
        self.errors: dict[str, str] = {}
        self.load: dict[str, float] = {"before": os.getloadavg()[0]}

    def measure(self, name: str, fn: Callable[..., Any], *args: Any) -> Any:
        say(f"{name} ...")
        try:
            self.raw[name] = fn(*args)
        except Exception as exc:
            self.errors[name] = f"{type(exc).__name__}: {exc}"
            say(f"{name} FAILED: {self.errors[name]}")
        self.load[name] = os.getloadavg()[0]
        return self.raw.get(name)

    def report(
        self,
        rows: Sequence[Row],
        baseline_name: str,
        json_path: Path | None,
        sizes: Any,
        versions: Callable[[], dict[str, str]],
    ) -> None:
        """Print the table and the load averages, write the JSON record when asked, and
        exit 1 if a section failed: a section that lost data or crashed is a failure,
        not a slow figure. ``versions`` is only called for the record."""
        print(table(rows, baseline_name))
        print(f"\n1-minute load average: {', '.join(f'{k} {v:.2f}' for k, v in self.load.items())}")
        if json_path is not None:
            meta = machine(**versions()) | {
                "sizes": asdict(sizes),
                "load": self.load,
                "raw": self.raw,
                "errors": self.errors,
            }
            write_json(json_path, rows, meta)
            say(f"wrote {json_path}")
        if self.errors:
            sys.exit(1)


@contextlib.contextmanager
def scratch(admin_url: str | None) -> Iterator[str | None]:
    """A scratch PostgreSQL database dropped afterwards; None (SQLite) without ``admin_url``."""
    if admin_url is None:
        yield None
        return
    from naiad.testing.postgres import scratch_database

    with scratch_database(admin_url) as url:
        yield url
