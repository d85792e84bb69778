"""The replicas on this machine as the keeper knows them: their processes and health.

A replica is found by its slot (endpoint, variant key, index) and lives in the directory
``replicas`` describes. ``check`` looks at each process (by pid, in /proc) and then asks
``GET /ping``: a replica that dies is marked for a restart (and the start counts in its
``restarts``), one that never answers in time is killed, one that stops answering leaves
the rotation and, if it stays silent, is restarted. ``retire`` takes a replica out of the
rotation; ``step`` then drains it (SIGTERM), kills it after the grace (SIGKILL) and
removes its directory once the process is gone.
"""

import logging
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from naiad.schemas.endpoints import Replica
from naiad.server.controller import replicas

log = logging.getLogger("naiad.endpoints")

PING_FAILURES = 3  # missed pings in a row before a serving replica leaves the rotation
UNHEALTHY_RESTART_S = 30.0  # a replica that stays unhealthy this long is restarted
RETIRE_DELAY_S = 0.5  # between leaving the routing table and SIGTERM


@dataclass(eq=False)
class Proc:
    """One replica as the keeper knows it: its process, health and history."""

    endpoint: str
    key: str
    index: int
    root: Path
    variant: str = ""
    version_id: str = ""
    pid: int | None = None
    port: int | None = None
    child: subprocess.Popen[bytes] | None = None
    launched: bool = False  # started at least once (by us or by a previous server)
    healthy: bool = False
    ever_healthy: bool = False  # since its last start
    restarts: int = 0
    failed_starts: int = 0
    started_at: float = 0.0
    ping_failures: int = 0
    unhealthy_since: float | None = None
    timed_out: bool = False
    retry_at: float = 0.0
    failure: str | None = None
    retire_at: float | None = None
    term_sent_at: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def label(self) -> str:
        return f"{self.variant or self.key}/{self.index}"

    def alive(self) -> bool:
        if self.pid is None or self.port is None:
            return False
        if self.child is not None:
            return self.child.poll() is None  # also reaps it
        return replicas.is_replica(self.root, self.pid, self.port)


class ReplicaSet:
    def __init__(
        self,
        root: Path,
        pool: ThreadPoolExecutor,
        http: httpx.Client,
        start_timeout_s: float,
        stop_grace_s: float,
    ) -> None:
        self.root = root
        self.start_timeout_s = start_timeout_s
        self.stop_grace_s = stop_grace_s
        self._pool = pool
        self._http = http
        self._procs: dict[tuple[str, str, int], Proc] = {}
        self._lock = threading.Lock()

    def all(self) -> list[Proc]:
        with self._lock:
            return list(self._procs.values())

    def of(self, endpoint: str) -> list[Proc]:
        return [p for p in self.all() if p.endpoint == endpoint]

    def slot(self, endpoint: str, key: str, index: int) -> Proc:
        """The replica of this slot, known from now on (not started)."""
        with self._lock:
            proc = self._procs.get((endpoint, key, index))
            if proc is None:
                root = self.root / endpoint / key / str(index)
                proc = self._procs[(endpoint, key, index)] = Proc(endpoint, key, index, root)
            return proc

    def live(self, endpoint: str) -> dict[str, list[Replica]]:
        """The replicas of each variant key, as of the last check."""
        out: dict[str, list[Replica]] = {}
        for p in sorted(self.of(endpoint), key=lambda p: (p.key, p.index)):
            if p.retire_at is None:
                out.setdefault(p.key, []).append(
                    Replica(
                        index=p.index,
                        port=p.port,
                        pid=p.pid,
                        healthy=p.healthy,
                        restarts=p.restarts,
                    )
                )
        return out

    def start(self, proc: Proc, launch: replicas.Launch) -> None:
        if proc.launched:
            proc.restarts += 1
        proc.child, proc.port = replicas.start(proc.root, launch, proc.restarts)
        proc.pid = proc.child.pid
        proc.launched = True
        proc.healthy = proc.ever_healthy = proc.timed_out = False
        proc.started_at = time.monotonic()
        proc.ping_failures, proc.unhealthy_since = 0, None

    def adopt(self) -> None:
        """Find the replicas a previous server started: live ones are re-attached."""
        if not self.root.is_dir():
            return
        for record_file in sorted(self.root.glob(f"*/*/*/{replicas.STATE_FILE}")):
            root = record_file.parent
            if not (root.name.isascii() and root.name.isdigit()):
                continue
            endpoint, key = root.parent.parent.name, root.parent.name
            record = replicas.read_record(root) or {}
            proc = Proc(endpoint, key, int(root.name), root, launched=True)
            proc.restarts = int(record.get("restarts") or 0)
            found = replicas.live_replica(root)
            if found is not None:
                proc.pid, proc.port = found
                proc.started_at = time.monotonic()
                log.info("re-attached to replica %s of %s (pid %s)", proc.label, endpoint, proc.pid)
            with self._lock:
                self._procs[(endpoint, key, proc.index)] = proc

    def check(self) -> None:
        """Processes first (cheap), then /ping of the live ones, all at once."""
        now = time.monotonic()
        pinging = []
        for proc in self.all():
            if proc.pid is None:
                continue
            if not proc.alive():
                self._died(proc, now)
            elif proc.retire_at is None:
                pinging.append(proc)
        for proc, ok in zip(pinging, self._pool.map(self._ping, pinging), strict=True):
            self._pinged(proc, ok, now)

    def _ping(self, proc: Proc) -> bool:
        try:
            return self._http.get(f"{proc.url}/ping").status_code == 200
        except httpx.HTTPError:
            return False

    def _pinged(self, proc: Proc, ok: bool, now: float) -> None:
        if ok:
            proc.healthy = proc.ever_healthy = True
            proc.failed_starts = proc.ping_failures = 0
            proc.unhealthy_since = None
            return
        if not proc.ever_healthy:
            if now - proc.started_at > self.start_timeout_s and not proc.timed_out:
                log.warning(
                    "replica %s of %s did not answer /ping in %ss; stopping it",
                    proc.label,
                    proc.endpoint,
                    self.start_timeout_s,
                )
                proc.timed_out = True
                replicas.send(proc.pid or 0, signal.SIGKILL)
            return
        proc.ping_failures += 1
        if proc.ping_failures >= PING_FAILURES:
            proc.healthy = False
            proc.unhealthy_since = proc.unhealthy_since or now
            if now - proc.unhealthy_since > UNHEALTHY_RESTART_S:
                log.warning(
                    "replica %s of %s stopped answering; restarting it", proc.label, proc.endpoint
                )
                replicas.send(proc.pid or 0, signal.SIGKILL)

    def _died(self, proc: Proc, now: float) -> None:
        code = proc.child.returncode if proc.child is not None else None
        proc.pid = proc.child = None
        proc.healthy = False
        if proc.retire_at is not None:
            return
        if proc.ever_healthy:
            proc.retry_at = now
            log.warning(
                "replica %s of %s exited (code %s); restarting it", proc.label, proc.endpoint, code
            )
            return
        proc.failed_starts += 1
        proc.retry_at = now + min(30.0, 0.5 * 2 ** (proc.failed_starts - 1))
        why = (
            f"did not answer /ping within {self.start_timeout_s:g}s and was stopped"
            if proc.timed_out
            else "exited before it answered /ping"
            + (f" (exit code {code})" if code is not None else "")
        )
        tail = replicas.log_tail(proc.root)
        proc.failure = (
            f"Replica {proc.label} {why}; the end of {proc.root / replicas.LOG_FILE}:\n{tail}"
            if tail
            else f"Replica {proc.label} {why}; its log {proc.root / replicas.LOG_FILE} is empty."
        )

    def retire(self, proc: Proc) -> None:
        """Out of the routing table now; SIGTERM (drain) shortly; SIGKILL after the grace."""
        proc.retire_at = time.monotonic() + (RETIRE_DELAY_S if proc.healthy else 0.0)
        proc.healthy = False

    def step(self, gone: Callable[[Proc], None]) -> None:
        """Move every retiring replica on; ``gone(proc)`` runs before its directory goes."""
        now = time.monotonic()
        for proc in self.all():
            if proc.retire_at is None:
                continue
            if proc.pid is None or not proc.alive():
                gone(proc)
                replicas.remove(proc.root)
                with self._lock:
                    self._procs.pop((proc.endpoint, proc.key, proc.index), None)
            elif proc.term_sent_at is None and now >= proc.retire_at:
                replicas.send(proc.pid, signal.SIGTERM)
                proc.term_sent_at = now
            elif proc.term_sent_at is not None and now - proc.term_sent_at > self.stop_grace_s:
                replicas.send(proc.pid, signal.SIGKILL)
