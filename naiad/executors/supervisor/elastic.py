"""Elastic jobs: a world that re-forms as hosts come and go (``max_nodes``).

Each host of an elastic job runs one torchrun agent with ``--nnodes MIN:MAX`` in one
rendezvous, whose store this machine hosts (``rendezvous_store.py``), so no agent's loss
takes the rendezvous with it. torchrun does the rest: when a host is lost its peers'
collectives fail, their agents restart their workers and meet again without it; when a
host joins, the running agents see it waiting and restart theirs to take it in. Workers
resume from the latest checkpoint each time, so a resize costs the steps since then.

``ElasticGroup`` is one attempt of such a job on this machine (the local executor): it
starts an agent per host the executor has granted (``grant.json``), starts a lost host
again after ``rejoin_s``, and fails the attempt only when an agent fails on its own
(its script failed past torchrun's restarts), not when one is killed. ``Resizes`` turns
what rank 0 reports at each round (``naiad.runtime.elastic``: world size, resumed step)
and the host changes seen meanwhile into the job's resize events; on Ray the job's
coordinator keeps one too.
"""

import contextlib
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil

from naiad.executors.supervisor import launch
from naiad.executors.supervisor.hosts import Host, pump_lines

ROUND_WAIT_S = 10.0  # a round's report without a step yet: recorded without one after this
FINISH_GRACE_S = 30.0  # after the first agent succeeds, for the others to end on their own
MAX_LOSSES = 5  # a host lost this often in one attempt fails the attempt
SLOW_TICK_S = 1.0  # how often the agents' workers, the grant and the rounds are read


def start_store(python: str, host: str, log: Path) -> tuple[launch.Process, int]:
    """Start the rendezvous store with ``python``; returns it and the port it listens on."""
    script = str(Path(__file__).with_name("rendezvous_store.py"))
    proc = launch.start([python, script, host], {}, Path("/"), None)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode(errors="replace").strip()
    if not line.isdigit():
        proc.kill()
        proc.wait()
        with contextlib.suppress(OSError), open(log, "a") as f:
            f.write(f"[naiad] the rendezvous store did not start: {line}\n")
        raise RuntimeError(f"the elastic job's rendezvous store did not start ({line!r})")
    proc.stdout.close()
    return proc, int(line)


def read_rounds(folder: Path, seen: dict[str, float]) -> list[dict[str, Any]]:
    """Round reports in ``folder`` written or changed since ``seen`` (name -> mtime), oldest
    first, each with its ``name``."""
    found = []
    for path in folder.glob("round-*.json") if folder.is_dir() else []:
        try:
            mtime = path.stat().st_mtime
            if seen.get(path.name) == mtime:
                continue
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # half written (it is replaced atomically) or gone: next time
        if isinstance(data, dict) and isinstance(data.get("world_size"), int):
            seen[path.name] = mtime
            found.append({**data, "name": path.name})
    return sorted(found, key=lambda r: float(r.get("at") or 0.0))


@dataclass
class Resizes:
    """An elastic job's resize events, from rank 0's round reports and the host changes
    seen between them (the why)."""

    events: list[dict[str, Any]] = field(default_factory=list)
    workers: int = 0  # the world size of the last round recorded
    causes: list[str] = field(default_factory=list)
    pending: dict[str, Any] | None = None  # the newest round, while its step is unknown
    first_seen: float = 0.0
    saved: int = 0  # how many the job's state holds

    def __post_init__(self) -> None:
        self.saved = len(self.events)  # an earlier attempt's

    def unsaved(self) -> list[dict[str, Any]] | None:
        """Every event, when some are not in the job's state yet (the caller saves them)."""
        if len(self.events) == self.saved:
            return None
        self.saved = len(self.events)
        return list(self.events)

    def host_changed(self, why: str) -> None:
        """A host lost or joined: the next round's why (the pending one came before it)."""
        if self.pending is not None:
            self._record(self.pending)
            self.pending = None
        self.causes.append(why)

    def report(self, round_: dict[str, Any]) -> None:
        if self.pending is not None and self.pending["name"] != round_["name"]:
            self._record(self.pending)
        if self.pending is None or self.pending["name"] != round_["name"]:
            self.first_seen = time.monotonic()
        self.pending = round_

    def settle(self, final: bool = False) -> None:
        """Record the pending round once its step is known, it waited long enough, or the
        attempt ended."""
        waited = time.monotonic() - self.first_seen > ROUND_WAIT_S
        if self.pending is not None and (self.pending.get("step") is not None or waited or final):
            self._record(self.pending)
            self.pending = None

    def _record(self, round_: dict[str, Any]) -> None:
        size = int(round_["world_size"])
        if size == self.workers:  # the same world again (its workers restarted): no resize
            self.causes = []
            return
        step = round_.get("step")
        why = "; ".join(self.causes) or ("started" if not self.workers else "the world re-formed")
        self.events.append(
            {
                "seq": len(self.events),
                "at": float(round_.get("at") or time.time()),
                "from_workers": self.workers,
                "to_workers": size,
                "step": step if isinstance(step, int) else None,
                "reason": why,
            }
        )
        self.workers, self.causes = size, []


@dataclass
class Slot:
    """One host of the job, and its agent while one runs there."""

    host: Host
    proc: launch.Process | None = None
    pump: threading.Thread | None = None
    tree: list[psutil.Process] = field(default_factory=list)  # its agent's workers, last seen
    lost_at: float | None = None
    losses: int = 0

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None


class ElasticGroup:
    """One attempt of an elastic job on this machine: an agent per granted host."""

    def __init__(
        self,
        hosts: Sequence[Host],
        log: Path,
        say: Callable[[str], None],
        start: Callable[[Host], tuple[launch.Process, IO[bytes] | None]],
        granted: Callable[[], int],
        rejoin_s: float,
        rounds: Path,
        store: launch.Process,
        save: Callable[..., None],
        events: Sequence[dict[str, Any]] = (),
    ) -> None:
        """``start`` starts a host's agent (its output piped for a host after the first);
        ``granted`` says how many hosts the executor has room for; ``save`` records the
        events (after ``events``, earlier attempts') and which agent runs where in the
        job's state."""
        self.slots = [Slot(host) for host in hosts]
        self.log, self.say, self.start, self.granted = log, say, start, granted
        self.rejoin_s, self.rounds, self.store = rejoin_s, rounds, store
        self.save = save
        self.resizes = Resizes(list(events))  # an earlier attempt's go on: seq continues
        self.seen: dict[str, float] = {}
        self.finished_at: float | None = None
        self.slow_at = 0.0
        self.fill()

    # -- what the supervisor's watch loop needs (as HostGroup) ---------------------------
    @property
    def procs(self) -> list[launch.Process]:
        return [s.proc for s in self.slots if s.proc is not None]

    @property
    def pids(self) -> list[int]:
        return [s.proc.pid for s in self.slots if s.proc is not None and s.running]

    @property
    def returncode(self) -> int | None:
        return self.slots[0].proc.returncode if self.slots[0].proc is not None else None

    def running(self) -> bool:
        return any(s.running for s in self.slots)

    def poll(self) -> tuple[int, Host | None] | None:
        """None while the job runs; ``(0, None)`` once its agents succeeded; else the exit
        code of the agent that failed on its own (or of the store) and its host."""
        now = time.monotonic()
        for slot in self.slots:
            if slot.proc is None or not slot.running:
                continue
            code = slot.proc.poll()
            if code is None:
                continue
            if code == 0:
                self.finished_at = self.finished_at or now
            elif self.finished_at is None and code < 0:
                self._lost(slot, code)
                if slot.losses >= MAX_LOSSES:
                    return code, slot.host
            elif self.finished_at is None:
                return code, slot.host
        if self.finished_at is not None:
            done = not self.running() or now - self.finished_at > FINISH_GRACE_S
            return (0, None) if done else None
        if (ended := self.store.poll()) is not None:
            self.say(f"the rendezvous store exited ({launch.describe_exit(ended)})")
            return 1, None
        return None

    def tick(self) -> None:
        """Reap at every poll; once a second, note each agent's workers, record the rounds
        rank 0 reported, and start the hosts granted or due back."""
        launch.reap_orphans([p.pid for p in self.procs])
        now = time.monotonic()
        if now - self.slow_at < SLOW_TICK_S:
            return
        self.slow_at = now
        for slot in self.slots:
            if slot.running and slot.proc is not None:
                with contextlib.suppress(psutil.Error):
                    slot.tree = psutil.Process(slot.proc.pid).children(recursive=True)
        for round_ in read_rounds(self.rounds, self.seen):
            self.resizes.report(round_)
        self.resizes.settle()
        self.fill()  # after the rounds so far: a host joining now belongs to the next one
        self._save_events()

    def end(self, grace_s: float) -> None:
        launch.end_all([*self.procs, self.store], grace_s)
        for slot in self.slots:
            if slot.pump is not None:
                slot.pump.join(5.0)
        self.resizes.settle(final=True)
        self._save_events()

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.end(0)

    # -- hosts coming and going ----------------------------------------------------------
    def fill(self) -> None:
        """Start an agent on each granted host without one: at once for a host never
        started, ``rejoin_s`` after it was lost."""
        if self.finished_at is not None:
            return
        now = time.monotonic()
        for slot in self.slots[: self.granted()]:
            if slot.running:
                continue
            if slot.lost_at is not None and now - slot.lost_at < self.rejoin_s:
                continue
            again = slot.proc is not None
            slot.proc, output = self.start(slot.host)
            slot.tree, slot.lost_at = [], None
            if output is not None:
                prefix = f"[{slot.host.name}] ".encode()
                slot.pump = threading.Thread(
                    target=pump_lines,
                    args=(output, self.log, prefix),
                    name=f"naiad-log-{slot.host.name}",
                    daemon=True,
                )
                slot.pump.start()
            live = sum(s.running for s in self.slots)
            self._save_hosts()
            if again:
                self.say(f"{slot.host.name} joins again ({live} host(s) running)")
                self.resizes.host_changed(f"{slot.host.name} joined again")
            elif self.resizes.workers:  # after the first round: the job grew
                self.say(f"{slot.host.name} joins: the job has room for it ({live} running)")
                self.resizes.host_changed(f"{slot.host.name} joined (room freed)")

    def _save_events(self) -> None:
        if (events := self.resizes.unsaved()) is not None:
            self.save(events=events)

    def _save_hosts(self) -> None:
        hosts = {s.host.name: s.proc.pid for s in self.slots if s.proc is not None and s.running}
        self.save(pids=list(hosts.values()), hosts=hosts)

    def _lost(self, slot: Slot, code: int) -> None:
        """Its agent was killed: end the workers it left, and start it again later."""
        for p in slot.tree:
            with contextlib.suppress(psutil.Error):
                p.kill()
        slot.tree, slot.lost_at = [], time.monotonic()
        slot.losses += 1
        self._save_hosts()
        live = sum(s.running for s in self.slots)
        self.say(
            f"{slot.host.name} was lost ({launch.describe_exit(code)}); {live} host(s) carry "
            f"on, and it starts again in {self.rejoin_s:g} s"
        )
        self.resizes.host_changed(f"{slot.host.name} was lost ({launch.describe_exit(code)})")
