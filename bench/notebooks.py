"""Notebooks: a managed notebook's cold start and the proxy's cost, against JupyterLab direct.

In one run, on this machine, against a live ``naiad server`` (SQLite, a temporary home,
a free loopback port; ``naiad.testing.live``):

1. Cold start. ``client.notebooks.create(NAME)`` (no ``wait``), then ``GET
   /notebooks/NAME/lab`` through the server's URL with the token, polled every 20 ms
   until it answers 200, then every script and stylesheet the page names (the main
   bundle, ``main.*.js``, among them) fetched through the same URL: the page a browser
   gets from the moment the user asks. Beside it, a watcher thread notes when the
   keeper launched JupyterLab (its ``notebook.json`` written) and when JupyterLab first
   answered its health path (``/notebooks/NAME/api``) on its own port, so the figure
   splits into the API call, the keeper's start, JupyterLab's own start and what comes
   after it. The baseline: ``python -m jupyterlab`` started here with the arguments and
   environment Naiad gives it (``naiad.server.managed.notebooks.arguments``, a fresh
   directory and token), timed from its launch to its ``/api`` answering, then the same
   page and assets fetched from its port with its token. Each repetition makes a fresh
   notebook, measures it and deletes it (until gone), then starts and stops the direct
   JupyterLab (the order alternates); a first repetition of each warms the disk cache
   and is not counted. Median and p90.
2. The proxy's cost, on one notebook and one kernel (started through the proxy):
   ``execute_request`` of a trivial statement over the kernel's channels WebSocket,
   sequential round trips timed from the send to both its ``execute_reply`` (shell)
   and its ``idle`` status (iopub), as a front-end waits for a cell, through
   ``ws://SERVER/notebooks/NAME/api/kernels/ID/channels`` with Naiad's token against
   ``ws://127.0.0.1:PORT/...`` with JupyterLab's own token (``Authorization: token``).
   The two paths take turns in blocks (each a fresh connection, a few untimed round
   trips first); the handshake is timed too. The same for HTTP: ``GET api/status``
   on one keep-alive client per path, and the main bundle fetched whole.

Both sides run JupyterLab with the arguments Naiad gives it, its kernel WebSocket with
``TCP_NODELAY`` included (``naiad.server.managed.jupyter_channels``).

Printed as a table (ratio: direct / through Naiad for times, so below 1 means Naiad is
slower); the record goes to ``bench/results/notebooks.json``. Every notebook made is
deleted and every process started is stopped by its process group; anything left
running under the temporary directory afterwards is named and killed by its PID.

    python bench/notebooks.py [--quick] [--reps 8] [--round-trips 400]
"""

import argparse
import contextlib
import json
import os
import re
import secrets
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from _common import Process, Row, Sections, free_port, say
from websockets.sync.client import ClientConnection, connect

from naiad.testing.jupyter import execute_request, replies

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results" / "notebooks.json"
POLL_S = 0.02
START_TIMEOUT_S = 180.0
BROWSER = {  # what a browser sends with every request (compression included)
    "accept": "text/html,application/xhtml+xml,*/*;q=0.8",
    "accept-encoding": "gzip, deflate",
    "user-agent": "naiad-bench",
}
ASSET = re.compile(r"""<(?:script[^>]*\ssrc|link[^>]*\shref)=["']([^"']+)["']""", re.I)


@dataclass(frozen=True)
class Sizes:
    reps: int = 8  # cold starts each way, after one uncounted
    round_trips: int = 400  # WebSocket round trips per path
    gets: int = 400  # HTTP GETs per path
    block: int = 50  # round trips / GETs per turn of a path
    bundle_fetches: int = 20  # whole main bundles per path


QUICK = Sizes(reps=2, round_trips=60, gets=60, block=20, bundle_fetches=4)


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear between the closest ranks."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    at = (len(ordered) - 1) * q / 100
    low = int(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": pct(values, 50),
        "p90": pct(values, 90),
        "p99": pct(values, 99),
        "mean": statistics.fmean(values),
        "min": min(values),
        "max": max(values),
    }


# -- the page and what it loads -------------------------------------------------------


def poll_page(http: httpx.Client, url: str, started: float) -> httpx.Response:
    """GET ``url`` every POLL_S until it answers 200 (503 while the notebook starts)."""
    while True:
        with contextlib.suppress(httpx.TransportError):
            page = http.get(url)
            if page.status_code == 200:
                return page
            if page.status_code not in (502, 503, 504):
                raise RuntimeError(f"GET {url}: {page.status_code} {page.text[:300]}")
        if time.perf_counter() - started > START_TIMEOUT_S:
            raise RuntimeError(f"{url} did not answer 200 in {START_TIMEOUT_S:g}s")
        time.sleep(POLL_S)


def assets(page: str) -> list[str]:
    """The scripts and stylesheets the lab page names (paths from the server's root)."""
    found = [u for u in ASSET.findall(page) if u.startswith("/") and "static" in u]
    if not any("/main." in u for u in found):
        raise RuntimeError(f"no main bundle in the lab page; it names {found}")
    return list(dict.fromkeys(found))


def fetch_all(http: httpx.Client, base: str, paths: list[str]) -> int:
    """Fetch each asset in full; the bytes over the wire."""
    total = 0
    for path in paths:
        with http.stream("GET", f"{base}{path}") as reply:
            if reply.status_code != 200:
                raise RuntimeError(f"GET {path}: {reply.status_code}")
            for chunk in reply.iter_raw():
                total += len(chunk)
    return total


# -- cold start -----------------------------------------------------------------------


class Watcher(threading.Thread):
    """When the keeper launched a notebook's JupyterLab (its record on disk) and when
    that first answered its health path on its own port."""

    def __init__(self, root: Path, name: str, started: float) -> None:
        super().__init__(daemon=True)
        self.root, self.name, self.started = root, name, started
        self.launched: float | None = None
        self.answered: float | None = None
        self.done = threading.Event()

    def run(self) -> None:
        record = self.root / "notebook.json"
        with httpx.Client(timeout=1.0) as http:
            while not self.done.is_set():
                if self.launched is None:
                    with contextlib.suppress(OSError, ValueError):
                        port = json.loads(record.read_text())["port"]
                        self.launched = time.perf_counter() - self.started
                        url = f"http://127.0.0.1:{port}/notebooks/{self.name}/api"
                elif self.answered is None:
                    with contextlib.suppress(httpx.TransportError):
                        if http.get(url).status_code == 200:
                            self.answered = time.perf_counter() - self.started
                            return
                time.sleep(POLL_S / 2 if self.launched is None else POLL_S)


def naiad_cold(client: Any, server: Any, name: str) -> dict[str, float]:
    """create() to the lab page and its assets through the proxy."""
    http = httpx.Client(headers=BROWSER | {"authorization": f"Bearer {server.token}"}, timeout=60)
    started = time.perf_counter()
    watcher = Watcher(server.home / "notebooks" / name, name, started)
    watcher.start()
    try:
        client.notebooks.create(name)
        created = time.perf_counter() - started
        page = poll_page(http, f"{server.url}/notebooks/{name}/lab", started)
        paged = time.perf_counter() - started
        found = assets(page.text)
        size = fetch_all(http, server.url, found)
        loaded = time.perf_counter() - started
    finally:
        watcher.done.set()
        watcher.join(5)
        http.close()
    status = client.notebooks.get(name).status
    if status != "InService":
        raise RuntimeError(f"notebook {name} is {status} after its page answered")
    return {
        "created": created,
        "launched": watcher.launched or float("nan"),
        "answered": watcher.answered or float("nan"),
        "page": paged,
        "loaded": loaded,
        "assets": len(found),
        "bytes": size + len(page.content),
    }


def direct_env(root: Path, token: str, extra: dict[str, str]) -> dict[str, str]:
    """What Naiad gives its JupyterLab (``NotebookFleet.environment``), less Naiad's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NAIAD_")}
    env.update(extra)
    env.update(
        JUPYTER_TOKEN=token,
        JUPYTER_RUNTIME_DIR=str(root / "runtime"),
        JUPYTER_CONFIG_DIR=str(root / "config"),
        IPYTHONDIR=str(root / "ipython"),
        PYTHONUNBUFFERED="1",
    )
    return env


def direct_cold(tmp: Path, name: str, extra: dict[str, str]) -> dict[str, float]:
    """``python -m jupyterlab`` launched to its page and assets loaded from its port."""
    from naiad.server.managed.notebooks import arguments

    root = tmp / "direct" / name
    files = root / "files"
    files.mkdir(parents=True)
    token = secrets.token_urlsafe(32)
    port = free_port()
    argv = [sys.executable, "-m", "jupyterlab", *arguments(name, files, port)]
    proc = Process(argv, root / "notebook.log", direct_env(root, token, extra))
    base = f"http://127.0.0.1:{port}"
    http = httpx.Client(headers=BROWSER | {"authorization": f"token {token}"}, timeout=60)
    started = time.perf_counter()
    try:
        proc.start(f"{base}/notebooks/{name}/api", timeout=START_TIMEOUT_S)
        answered = time.perf_counter() - started
        page = poll_page(http, f"{base}/notebooks/{name}/lab", started)
        paged = time.perf_counter() - started
        found = assets(page.text)
        size = fetch_all(http, base, found)
        loaded = time.perf_counter() - started
    finally:
        http.close()
        proc.stop()
    return {
        "answered": answered,
        "page": paged,
        "loaded": loaded,
        "assets": len(found),
        "bytes": size + len(page.content),
    }


def cold_starts(
    client: Any, server: Any, tmp: Path, sizes: Sizes, extra: dict[str, str]
) -> dict[str, Any]:
    """Alternating: a notebook made, measured and deleted; JupyterLab started and stopped."""
    naiad: list[dict[str, float]] = []
    direct: list[dict[str, float]] = []
    for i in range(sizes.reps + 1):
        name = f"cold-{i}"

        def ours(name: str = name, i: int = i) -> None:
            figures = naiad_cold(client, server, name)
            started = time.perf_counter()
            client.notebooks.delete(name, wait=True, timeout=120)
            figures["deleted"] = time.perf_counter() - started
            naiad.append(figures)
            say(f"rep {i}: Naiad {json.dumps({k: round(v, 3) for k, v in figures.items()})}")

        def theirs(name: str = name, i: int = i) -> None:
            figures = direct_cold(tmp, name, extra)
            direct.append(figures)
            say(f"rep {i}: direct {json.dumps({k: round(v, 3) for k, v in figures.items()})}")

        for side in (ours, theirs) if i % 2 == 0 else (theirs, ours):
            side()
    return {"naiad": naiad[1:], "direct": direct[1:], "warmup": [naiad[0], direct[0]]}


# -- the proxy's cost -----------------------------------------------------------------


def round_trip(ws: ClientConnection, session: str) -> tuple[float, float]:
    """Seconds from the send to the execute_reply, and to both it and the idle status."""
    msg_id, text = execute_request(session, "x = 1")
    started = time.perf_counter()
    ws.send(text)
    replied = idle = None
    for message in replies(ws, msg_id, timeout=30):
        kind = message["msg_type"]
        if kind == "execute_reply":
            if message["content"]["status"] != "ok":
                raise RuntimeError(f"execute_reply: {message['content']}")
            replied = time.perf_counter() - started
        elif kind == "status" and message["content"]["execution_state"] == "idle":
            idle = time.perf_counter() - started
    assert replied is not None and idle is not None
    return replied, max(replied, idle)


@dataclass(frozen=True)
class Route:
    """One way to the notebook's JupyterLab: through Naiad, or straight to its port."""

    name: str
    base: str  # http://host:port
    auth: str  # the Authorization header's value


def websocket_figures(paths: list[Route], notebook: str, kernel: str, sizes: Sizes) -> dict:
    out: dict[str, dict[str, list[float]]] = {
        p.name: {"reply": [], "done": [], "handshake": []} for p in paths
    }
    blocks = max(1, sizes.round_trips // sizes.block)
    for b in range(blocks):
        for p in paths if b % 2 == 0 else paths[::-1]:
            session = uuid.uuid4().hex
            url = (
                f"{p.base.replace('http://', 'ws://')}/notebooks/{notebook}"
                f"/api/kernels/{kernel}/channels?session_id={session}"
            )
            started = time.perf_counter()
            with connect(url, additional_headers={"authorization": p.auth}, open_timeout=30) as ws:
                out[p.name]["handshake"].append(time.perf_counter() - started)
                for _ in range(5):  # untimed: the connection's first messages
                    round_trip(ws, session)
                for _ in range(sizes.block):
                    reply, done = round_trip(ws, session)
                    out[p.name]["reply"].append(reply)
                    out[p.name]["done"].append(done)
    return out


def http_figures(paths: list[Route], notebook: str, bundle: str, sizes: Sizes) -> dict:
    out: dict[str, Any] = {p.name: {"status": [], "bundle": []} for p in paths} | {"floor": []}
    clients = {
        p.name: httpx.Client(headers=BROWSER | {"authorization": p.auth}, timeout=60) for p in paths
    }
    try:
        for p in paths:  # a first, untimed request opens each keep-alive connection
            clients[p.name].get(f"{p.base}/notebooks/{notebook}/api/status").raise_for_status()
        blocks = max(1, sizes.gets // sizes.block)
        for b in range(blocks):
            for p in paths if b % 2 == 0 else paths[::-1]:
                url = f"{p.base}/notebooks/{notebook}/api/status"
                http = clients[p.name]
                for _ in range(sizes.block):
                    started = time.perf_counter()
                    reply = http.get(url)
                    elapsed = time.perf_counter() - started
                    if reply.status_code != 200:
                        raise RuntimeError(f"GET {url}: {reply.status_code}")
                    out[p.name]["status"].append(elapsed)
            http = clients[paths[0].name]  # Naiad's own floor: a route of its own, no proxy
            for _ in range(sizes.block):
                started = time.perf_counter()
                http.get(f"{paths[0].base}/api/v1/health").raise_for_status()
                out["floor"].append(time.perf_counter() - started)
        for i in range(sizes.bundle_fetches):
            for p in paths if i % 2 == 0 else paths[::-1]:
                started = time.perf_counter()
                size = fetch_all(clients[p.name], p.base, [bundle])
                out[p.name]["bundle"].append(time.perf_counter() - started)
                out[p.name]["bundle_bytes"] = size
    finally:
        for http in clients.values():
            http.close()
    return out


def proxy_cost(client: Any, server: Any, sizes: Sizes) -> dict[str, Any]:
    name = "proxied"
    client.notebooks.create(name, wait=True, timeout=START_TIMEOUT_S)
    root = server.home / "notebooks" / name
    port = json.loads((root / "notebook.json").read_text())["port"]
    token = (root / "jupyter_token").read_text().strip()
    paths = [
        Route("naiad", server.url, f"Bearer {server.token}"),
        Route("direct", f"http://127.0.0.1:{port}", f"token {token}"),
    ]
    http = httpx.Client(headers={"authorization": paths[0].auth}, timeout=60)
    kernel = None
    try:
        made = http.post(f"{server.url}/notebooks/{name}/api/kernels", json={"name": "python3"})
        made.raise_for_status()
        kernel = made.json()["id"]
        page = http.get(f"{server.url}/notebooks/{name}/lab", headers=BROWSER)
        bundle = next(u for u in assets(page.text) if "/main." in u)
        say(f"kernel {kernel}; WebSocket round trips")
        ws = websocket_figures(paths, name, kernel, sizes)
        say("HTTP GETs")
        gets = http_figures(paths, name, bundle, sizes)
    finally:
        if kernel is not None:
            http.delete(f"{server.url}/notebooks/{name}/api/kernels/{kernel}")
        http.close()
        client.notebooks.delete(name, wait=True, timeout=120)
    return {"websocket": ws, "http": gets, "bundle": bundle}


# -- the run --------------------------------------------------------------------------


def reap(tmp: Path) -> list[str]:
    """Processes still running from under ``tmp`` (JupyterLabs, kernels): named, killed."""
    import psutil

    left = []
    for proc in psutil.process_iter(["pid", "cmdline", "cwd"]):
        with contextlib.suppress(psutil.Error):
            line = " ".join(proc.info["cmdline"] or [])
            if str(tmp) in line or str(tmp) in (proc.info["cwd"] or ""):
                if proc.pid == os.getpid():
                    continue
                left.append(f"{proc.pid} {line[:160]}")
                os.kill(proc.pid, signal.SIGKILL)
    return left


def run(sizes: Sizes, sections: Sections) -> None:
    import naiad
    from naiad.testing.live import LiveServer

    with tempfile.TemporaryDirectory(prefix="naiad-bench-notebooks-") as name:
        tmp = Path(name)
        extra: dict[str, str] = {}
        server = LiveServer(home=tmp / "home")
        server.start()
        try:
            client = naiad.Client(url=server.url, token=server.token)
            sections.measure("cold start", cold_starts, client, server, tmp, sizes, extra)
            sections.measure("proxy", proxy_cost, client, server, sizes)
        finally:
            with contextlib.suppress(Exception):
                client = naiad.Client(url=server.url, token=server.token)
                for notebook in client.notebooks.list():  # they outlive the server
                    client.notebooks.delete(notebook.name, wait=True, timeout=60)
            server.stop()
            left = reap(tmp)
            if left:
                say(f"killed what was left running: {left}")
                sections.raw["left_running"] = left


# -- the report -----------------------------------------------------------------------


def med(runs: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def p90(runs: list[dict[str, float]], key: str) -> float:
    return pct([r[key] for r in runs], 90)


def rows_for(raw: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    cold = raw.get("cold start")
    if cold:
        n, d = cold["naiad"], cold["direct"]
        sec = f"Cold start ({len(n)} each)"
        kb = med(n, "bytes") / 1024
        rows += [
            Row(sec, "create() to the lab page (200), median", "s",
                med(n, "page"), med(d, "page"), False,
                note="direct: launch to its page"),
            Row(sec, f"... and its {med(n, 'assets'):.0f} scripts and styles, median", "s",
                med(n, "loaded"), med(d, "loaded"), False,
                note=f"{kb:,.0f} KiB over the wire"),
            Row(sec, "... and its scripts and styles, p90", "s",
                p90(n, "loaded"), p90(d, "loaded"), False),
            Row(sec, "  create() answered (POST /api/v1/notebooks)", "s",
                med(n, "created"), None, False),
            Row(sec, "  JupyterLab launched by the keeper", "s",
                med(n, "launched"), None, False),
            Row(sec, "  JupyterLab answering /api on its port", "s",
                med(n, "answered"), med(d, "answered"), False,
                note="direct: from its launch"),
            Row(sec, "  its first answer to the proxy's first 200", "s",
                statistics.median(r["page"] - r["answered"] for r in n),
                statistics.median(r["page"] - r["answered"] for r in d), False,
                note="the keeper's health check, then the page"),
            Row(sec, "  JupyterLab's own start (launch to /api)", "s",
                statistics.median(r["answered"] - r["launched"] for r in n),
                med(d, "answered"), False),
            Row(sec, "all but JupyterLab's own start (what Naiad adds), median", "s",
                statistics.median(r["loaded"] - r["answered"] + r["launched"] for r in n),
                statistics.median(r["loaded"] - r["answered"] for r in d), False,
                note="steadier than the totals on a busy machine"),
            Row(sec, "delete(wait=True) to gone", "s", med(n, "deleted"), None, False),
        ]  # fmt: skip
    proxy = raw.get("proxy")
    if proxy:
        ws, gets = proxy["websocket"], proxy["http"]
        n = len(ws["naiad"]["done"])
        sec = f"Kernel WebSocket ({n} round trips each)"
        for q in (50, 90, 99):
            a, b = pct(ws["naiad"]["done"], q), pct(ws["direct"]["done"], q)
            rows.append(Row(sec, f"execute 'x = 1' to reply and idle, p{q}", "ms",
                            a * 1e3, b * 1e3, False, note=f"+{(a - b) * 1e3:.2f} ms"))  # fmt: skip
        a, b = pct(ws["naiad"]["reply"], 50), pct(ws["direct"]["reply"], 50)
        rows.append(Row(sec, "execute to its execute_reply, p50", "ms", a * 1e3, b * 1e3, False,
                        note=f"+{(a - b) * 1e3:.2f} ms"))  # fmt: skip
        a, b = (statistics.median(ws[p]["handshake"]) for p in ("naiad", "direct"))
        rows.append(Row(sec, "WebSocket handshake, median", "ms", a * 1e3, b * 1e3, False,
                        note=f"{len(ws['naiad']['handshake'])} each"))  # fmt: skip
        n = len(gets["naiad"]["status"])
        sec = f"JupyterLab HTTP ({n} GETs each)"
        for q in (50, 90, 99):
            a, b = pct(gets["naiad"]["status"], q), pct(gets["direct"]["status"], q)
            rows.append(Row(sec, f"GET api/status, p{q}", "ms", a * 1e3, b * 1e3, False,
                            note=f"+{(a - b) * 1e3:.2f} ms"))  # fmt: skip
        floor = pct(gets["floor"], 50)
        rows.append(Row(sec, "GET /api/v1/health (Naiad's own route, no proxy), p50", "ms",
                        floor * 1e3, pct(gets["direct"]["status"], 50) * 1e3, False,
                        note="baseline: api/status direct"))  # fmt: skip
        size = gets["naiad"]["bundle_bytes"] / 2**20
        a, b = (statistics.median(gets[p]["bundle"]) for p in ("naiad", "direct"))
        rows.append(Row(sec, f"the main bundle ({size:.2f} MiB on the wire), median", "ms",
                        a * 1e3, b * 1e3, False,
                        note=f"{size / a:,.0f} vs {size / b:,.0f} MiB/s"))  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--reps", type=int, help="cold starts each way (after one uncounted)")
    parser.add_argument("--round-trips", type=int, help="WebSocket round trips per path")
    parser.add_argument("--json", type=Path, help="where the record goes")
    args = parser.parse_args()
    json_path = args.json or RESULTS
    sizes = QUICK if args.quick else Sizes()
    changes = {k: v for k, v in (("reps", args.reps), ("round_trips", args.round_trips)) if v}
    sizes = Sizes(**(asdict(sizes) | changes))
    sections = Sections()
    run(sizes, sections)
    rows = rows_for(sections.raw)
    for name, error in sections.errors.items():
        rows.append(Row(name, f"{name} FAILED", "", None, None, True, note=error))
    sections.report(rows, "direct", json_path, sizes, _versions)


def _versions() -> dict[str, str]:
    import jupyter_server
    import jupyterlab
    import websockets

    return {
        "jupyterlab": jupyterlab.__version__,
        "jupyter_server": jupyter_server.__version__,
        "websockets": websockets.__version__,
    }


if __name__ == "__main__":
    main()
