"""Endpoint replicas as managed processes: how one is started, and the set of them all.

A replica is found by its slot (endpoint, variant key, index) and lives in
``$NAIAD_HOME/endpoints/<endpoint>/<key>/<i>/``: ``replica.json`` (its record),
``replica.log`` (its output) and ``capture/`` (sampled requests, when capture is on).
``ReplicaSet.check`` looks at each process (by pid, in /proc) and then asks ``GET /ping``
of the live ones at once; what a missed ping, a death or a retirement does is the managed
process's (``process``). ``adopt`` re-attaches the replicas a previous server left running.
While the keeper asks for it (an endpoint autoscales), one replica waits with torch
imported (``standby``), so the next start, from zero above all, takes no import time.
"""

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

from naiad.schemas.endpoints import Replica
from naiad.server.managed.process import Kind, ManagedProcess, Policy, find
from naiad.server.managed.standby import Standby

log = logging.getLogger("naiad.endpoints")

SERVING_MODULE = "naiad.serving.main"
REPLICA = Kind(
    "replica",
    SERVING_MODULE,
    record_file="replica.json",
    log_file="replica.log",
    standby_module="naiad.serving.standby",
)
CAPTURE_DIR = "capture"


@dataclass(frozen=True)
class Launch:
    """Everything a replica is started with."""

    model_dir: Path
    max_batch: int
    max_delay_ms: float
    queue_size: int
    capture_fraction: float = 0.0


def arguments(root: Path, launch: Launch, port: int) -> list[str]:
    """What ``python -m naiad.serving.main`` is given."""
    args = [
        str(launch.model_dir),
        "--port",
        str(port),
        "--host",
        "127.0.0.1",
        "--max-batch",
        str(launch.max_batch),
        "--max-delay-ms",
        f"{launch.max_delay_ms:g}",
        "--queue-size",
        str(launch.queue_size),
    ]
    if launch.capture_fraction > 0:
        args += [
            "--capture-dir",
            str(root / CAPTURE_DIR),
            "--capture-fraction",
            f"{launch.capture_fraction:g}",
        ]
    return args


def live_replica(root: Path) -> tuple[int, int] | None:
    """(pid, port) of the replica a previous server started in ``root``, if it still runs."""
    return find(root, REPLICA)


@dataclass(eq=False, kw_only=True)
class ReplicaProcess(ManagedProcess):
    """One replica: a managed process in an endpoint's slot, serving a model version."""

    endpoint: str
    key: str
    index: int
    variant: str = ""
    version_id: str = ""

    @property
    def label(self) -> str:
        return f"{self.variant or self.key}/{self.index}"

    @property
    def who(self) -> str:
        return f"replica {self.label} of {self.endpoint}"


class ReplicaSet:
    """Every endpoint's replicas on this machine (the keeper holds it as ``fleet``)."""

    def __init__(
        self,
        root: Path,
        pool: ThreadPoolExecutor,
        http: httpx.Client,
        start_timeout_s: float,
        stop_grace_s: float,
        orphan_grace_s: float,
    ) -> None:
        self.root = root
        self.orphan_grace_s = orphan_grace_s  # see managed.orphans
        self.policy = Policy(start_timeout_s=start_timeout_s, stop_grace_s=stop_grace_s)
        self._pool = pool
        self._http = http
        self._procs: dict[tuple[str, str, int], ReplicaProcess] = {}
        self._lock = threading.Lock()
        self.standby = Standby(REPLICA)

    def all(self) -> list[ReplicaProcess]:
        with self._lock:
            return list(self._procs.values())

    def of(self, endpoint: str) -> list[ReplicaProcess]:
        return [p for p in self.all() if p.endpoint == endpoint]

    def _new(self, endpoint: str, key: str, index: int) -> ReplicaProcess:
        root = self.root / endpoint / key / str(index)
        return ReplicaProcess(root=root, kind=REPLICA, endpoint=endpoint, key=key, index=index)

    def slot(self, endpoint: str, key: str, index: int) -> ReplicaProcess:
        """The replica of this slot, known from now on (not started)."""
        with self._lock:
            proc = self._procs.get((endpoint, key, index))
            if proc is None:
                proc = self._procs[(endpoint, key, index)] = self._new(endpoint, key, index)
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

    def start(self, proc: ReplicaProcess, launch: Launch) -> None:
        proc.start(lambda port: arguments(proc.root, launch, port), self.standby)
        proc.guard(self.root.parent, self.orphan_grace_s)

    def adopt(self) -> None:
        """Find the replicas a previous server started: live ones are re-attached."""
        if not self.root.is_dir():
            return
        for record_file in sorted(self.root.glob(f"*/*/*/{REPLICA.record_file}")):
            root = record_file.parent
            if not (root.name.isascii() and root.name.isdigit()):
                continue
            proc = self._new(root.parent.parent.name, root.parent.name, int(root.name))
            if proc.reattach():
                log.info("re-attached to %s (pid %s)", proc.who, proc.pid)
                proc.guard(self.root.parent, self.orphan_grace_s)
            with self._lock:
                self._procs[(proc.endpoint, proc.key, proc.index)] = proc

    def check(self) -> None:
        """Processes first (cheap), then /ping of the live ones, all at once."""
        now = time.monotonic()
        pinging = []
        for proc in self.all():
            if proc.pid is None:
                continue
            if not proc.alive():
                proc.died(now, self.policy)
            elif proc.retire_at is None:
                pinging.append(proc)
        answers = self._pool.map(lambda p: p.ping(self._http), pinging)
        for proc, ok in zip(pinging, answers, strict=True):
            proc.pinged(ok, now, self.policy)

    def retire(self, proc: ReplicaProcess) -> None:
        proc.retire(self.policy)

    def step(self, gone: Callable[[ReplicaProcess], None]) -> None:
        """Move every retiring replica on; ``gone(proc)`` runs before its directory goes."""
        now = time.monotonic()
        for proc in self.all():
            if proc.retire_at is not None and proc.drain(now, self.policy):
                gone(proc)
                proc.remove(parents=2)  # and the variant's and endpoint's, once empty
                with self._lock:
                    self._procs.pop((proc.endpoint, proc.key, proc.index), None)
