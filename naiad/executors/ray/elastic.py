"""An elastic job's attempt on Ray: a host per node, as nodes come and go (``max_nodes``).

The coordinator hosts the rendezvous store (``supervisor/rendezvous_store.py``) on the
head node, which no job's loss can take, and keeps a placement group of one bundle for
each host the job may have (``algo-1`` .. ``algo-MAX``). The attempt starts once
``nodes`` of them are placed; each group placed later (a node joined, or another job
ended) starts one more host, whose torchrun agent joins the running world. A host whose
node dies is let go: its peers' agents re-form the world without it, and after
``rejoin_s`` its group is asked for again, so it comes back when a node has room.

Every host runs its supervisor as a gang's host does, with the coordinator's rendezvous
(``GangPlace.rendezvous``), and mirrors its checkpoints both ways, since the next
round's rank 0 may be on another node. Rank 0's round reports come back with each
host's poll and become the job's resize events (``supervisor/elastic.Resizes``).

Placement groups of one bundle each may put two hosts on one node when it has room for
both; torchrun treats them as two nodes all the same.
"""

import contextlib
import sys
import time
from dataclasses import dataclass, replace
from typing import Any

from naiad.executors.base import GangPlace, Phase
from naiad.executors.ray.gang import (
    CALL_TIMEOUT_S,
    HOST_STOP_GRACE_S,
    LOST_AFTER_S,
    WATCH_S,
    Coordinator,
    NodeHost,
    _node_alive,
    bundle,
    coordinator_name,
)
from naiad.executors.supervisor import launch
from naiad.executors.supervisor.elastic import FINISH_GRACE_S, MAX_LOSSES, Resizes, start_store
from naiad.executors.supervisor.workdir import spec_to_json

Outcome = tuple[str, str, int | None] | None  # None: succeeded; else (phase, reason, code)


@dataclass
class Slot:
    """One host the job may have, and what it has there now."""

    index: int
    group: Any = None  # its placement group, waiting or placed
    host: Any = None  # its NodeHost actor, once started
    node: str = ""
    offset: int = 0  # of its log, read so far
    asked: tuple[Any, float] | None = None  # its poll in flight, and since when
    lost_at: float | None = None
    losses: int = 0
    joins: int = 0
    state: dict[str, Any] | None = None  # its final state, once it ended

    @property
    def name(self) -> str:
        return f"algo-{self.index + 1}"

    @property
    def running(self) -> bool:
        return self.host is not None and self.state is None


class ElasticGang:
    """One attempt: ``run`` returns as the coordinator's ``_attempt`` does."""

    def __init__(self, coordinator: Coordinator, attempt: int) -> None:
        self.c, self.spec, self.attempt = coordinator, coordinator.spec, attempt
        assert self.spec.max_nodes is not None
        self.slots = [Slot(i) for i in range(self.spec.max_nodes)]
        self.resizes = Resizes(list(coordinator.state.get("events") or []))  # earlier attempts'

        self.finished_at: float | None = None
        self.store: launch.Process | None = None
        self.endpoint = ""

    def run(self) -> Outcome:
        import ray

        ip = ray.util.get_node_ip_address()
        self.store, port = start_store(sys.executable, ip, self.c.wd.job_log)
        self.endpoint = f"{ip}:{port}"
        try:
            for slot in self.slots:
                self._ask(slot)
            res = " and ".join(f"{v:g} {k}" for k, v in bundle(self.spec).items())
            needs = f"{self.spec.nodes} of {self.spec.max_nodes} node(s) with {res} free"
            waiting = f"Waiting for {needs}"
            self.c.save(phase="starting", attempt=self.attempt, placed=False, reason=waiting)
            self.c.log(f"attempt {self.attempt}: an elastic job; waits for {needs}")
            while sum(self._placed(s) for s in self.slots) < self.spec.nodes:
                if self.c._stopping():
                    return "stopped", "Stopped on request", None
                time.sleep(0.5)
            self.c.save(placed=True, reason=None)
            return self._watch()
        except ray.exceptions.RayError as exc:
            return "failed", f"A host of the elastic job could not start: {exc}", None
        finally:
            self._release()

    # -- hosts ---------------------------------------------------------------------------
    def _ask(self, slot: Slot) -> None:
        """Ask Ray for this host's bundle; it is placed when a node has room."""
        from ray.util.placement_group import placement_group

        name = f"{coordinator_name(self.spec.run_id)}-{self.attempt}-{slot.name}-{slot.joins}"
        slot.group = placement_group([bundle(self.spec)], strategy="PACK", name=name)

    def _placed(self, slot: Slot) -> bool:
        import ray

        if slot.group is None:
            return False
        ready, _ = ray.wait([slot.group.ready()], timeout=0)
        return bool(ready)

    def _start(self, slot: Slot) -> None:
        import ray
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        cpus, gpus = bundle(self.spec)["CPU"], bundle(self.spec).get("GPU", 0.0)
        folder = f"{self.spec.job_name}-{self.spec.run_id[:12]}-a{self.attempt}-{slot.index}"
        slot.host = (
            ray.remote(NodeHost)
            .options(
                num_cpus=cpus,
                num_gpus=gpus,
                scheduling_strategy=PlacementGroupSchedulingStrategy(slot.group, 0),
            )
            .remote(f"{folder}-{slot.joins}")
        )
        place = ray.get(slot.host.place.remote(), timeout=120)
        slot.node, slot.offset, slot.asked, slot.state = place["node"], 0, None, None
        names = [s.name for s in self.slots]
        gang = GangPlace(names, slot.index, place["ip"], 0, self.attempt, self.endpoint)
        spec = replace(
            self.spec,
            gang=gang,
            # one host reads metrics from its log: one series, not one per host
            metric_definitions=self.spec.metric_definitions if slot.index == 0 else [],
        )
        ray.get(slot.host.start.remote(spec_to_json(spec)), timeout=CALL_TIMEOUT_S)
        again = slot.joins > 0
        slot.joins += 1
        where = f"{place['ip']} (node {place['node'][:8]})"
        if again:
            self.c.log(f"{slot.name} joins again on {where}")
            self.resizes.host_changed(f"{slot.name} joined again")
        elif self.resizes.workers:
            self.c.log(f"{slot.name} joins on {where}: a node has room for it")
            self.resizes.host_changed(f"{slot.name} joined (room freed)")
        else:
            self.c.log(f"attempt {self.attempt}: {slot.name} starts on {where}")

    def _lose(self, slot: Slot, why: str) -> None:
        """Let a host go (its node died); ask for its bundle again after ``rejoin_s``."""
        import ray
        from ray.util.placement_group import remove_placement_group

        with contextlib.suppress(Exception):
            ray.kill(slot.host)
        with contextlib.suppress(Exception):
            remove_placement_group(slot.group)
        slot.host, slot.group, slot.asked = None, None, None
        slot.lost_at, slot.losses = time.monotonic(), slot.losses + 1
        live = sum(s.running for s in self.slots)
        self.c.log(
            f"{slot.name} was lost ({why}); {live} host(s) carry on, and it is asked for "
            f"again in {self.spec.rejoin_s:g} s"
        )
        self.resizes.host_changed(f"{slot.name} was lost ({why})")

    # -- the attempt ---------------------------------------------------------------------
    def _watch(self) -> Outcome:
        import ray

        while True:
            now = time.monotonic()
            if self.finished_at is None and not self.c._stopping():
                for slot in self.slots:
                    if slot.host is not None:
                        continue
                    due = slot.lost_at is None or now - slot.lost_at >= self.spec.rejoin_s
                    if slot.group is None and due:
                        self._ask(slot)
                    elif self._placed(slot):
                        self._start(slot)
            for slot in self.slots:
                if slot.running and slot.asked is None:
                    slot.asked = (slot.host.poll.remote(slot.offset), now)
            refs = [s.asked[0] for s in self.slots if s.running and s.asked is not None]
            answered, _ = ray.wait(refs, num_returns=len(refs), timeout=WATCH_S)
            for slot in self.slots:
                if not slot.running or slot.asked is None:
                    continue
                ref, since = slot.asked
                if ref not in answered:
                    if time.monotonic() - since > LOST_AFTER_S:
                        self._lose(slot, "no answer")
                    continue
                slot.asked = None
                try:
                    got = ray.get(ref)
                except ray.exceptions.ActorUnavailableError:
                    if not _node_alive(slot.node):
                        self._lose(slot, "its Ray node died")
                    continue
                except ray.exceptions.RayError as exc:
                    self._lose(slot, type(exc).__name__)
                    continue
                if (failed := self._take(slot, got)) is not None:
                    return failed
                if slot.losses >= MAX_LOSSES:
                    return "failed", f"Host {slot.name} was lost {slot.losses} times.", None
            self.resizes.settle()
            self._save_events()
            if self.c._stopping():
                return self._end("stopped", "Stopped on request", None)
            if self.finished_at is not None:
                running = any(s.running for s in self.slots)
                if not running or time.monotonic() - self.finished_at > FINISH_GRACE_S:
                    return self._end(None, "", None)
            if (ended := self.store.poll() if self.store else None) is not None:
                why = f"the rendezvous store exited ({launch.describe_exit(ended)})"
                return self._end("failed", why, None)

    def _read(self, slot: Slot, got: dict[str, Any]) -> dict[str, Any] | None:
        """A host's poll: its log into the job's, its rounds into the resizes; its final
        state once it has ended and its log is read whole, else None."""
        self.c._append(slot.index, got["log"])
        slot.offset += len(got["log"])
        for round_ in got.get("rounds", []):
            self.resizes.report(round_)
        state: dict[str, Any] = got["state"]
        if Phase(state.get("phase", "starting")).terminal and not got["log"]:
            slot.state = state
        return slot.state

    def _take(self, slot: Slot, got: dict[str, Any]) -> Outcome:
        """A host's poll while the job runs; a failure of the host's own ends the attempt."""
        ended = self._read(slot, got)
        state = got["state"]
        if state.get("phase") == "running" and self.c.state.get("phase") != "running":
            self.c.save(phase="running", attempt=self.attempt, reason=None)
            if self.c.state.get("started_at") is None:
                self.c.save(started_at=state.get("started_at") or time.time())
        if ended is None:
            return None
        if state["phase"] == "succeeded":
            self.finished_at = self.finished_at or time.monotonic()
            return None
        if self.finished_at is not None:
            return None  # a straggler after the job's end: no matter
        reason = f"Host {slot.name}: {state.get('reason') or 'it failed'}"
        phase = "stopped" if state["phase"] == "stopped" else "failed"
        return self._end(phase, reason, state.get("exit_code"))

    def _end(self, phase: str | None, reason: str, code: int | None) -> Outcome:
        """Stop the hosts still running and wait for them (a grace each); the outcome."""
        import ray

        grace = self.c.stop_grace if self.c.stop_grace is not None else HOST_STOP_GRACE_S
        running = [s for s in self.slots if s.running]
        for slot in running:
            slot.host.stop.remote(grace)
        deadline = time.monotonic() + grace + CALL_TIMEOUT_S
        while running and time.monotonic() < deadline:
            for slot in running:
                with contextlib.suppress(ray.exceptions.RayError):
                    got = ray.get(slot.host.poll.remote(slot.offset), timeout=CALL_TIMEOUT_S)
                    self._read(slot, got)
            running = [s for s in running if s.state is None]
            time.sleep(0.2)
        self.resizes.settle(final=True)
        self._save_events()
        return None if phase is None else (phase, reason, code)

    def _save_events(self) -> None:
        if (events := self.resizes.unsaved()) is not None:
            self.c.save(events=events)

    def _release(self) -> None:
        """Free every slot's group and the store; the coordinator then collects the
        hosts' unsent metrics and removes them (``c.hosts``)."""
        from ray.util.placement_group import remove_placement_group

        self.c.hosts = [s.host for s in self.slots if s.host is not None]
        self.c.lost = set()
        for slot in self.slots:
            if slot.group is not None:
                with contextlib.suppress(Exception):
                    remove_placement_group(slot.group)
            slot.group = None
        if self.store is not None:
            self.store.terminate()  # type: ignore[attr-defined]
            self.store.wait()
