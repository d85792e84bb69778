"""The scheduler's queue: priority first, then FIFO, within the executor's slots; stops;
re-attaching after a restart. The executor here is a recording stand-in: what is under
test is the order and the stored transitions, not process handling."""

import asyncio
import io
import tarfile
import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from naiad.core.ids import new_id
from naiad.core.status import Status
from naiad.executors.base import Capacity, ExecState, JobHandle, LaunchSpec, Phase
from naiad.executors.capacity import Slots, node_pool
from naiad.schemas.jobs import JobCreate
from naiad.schemas.metrics import MetricBatch
from naiad.server.app import build_state
from naiad.server.controller.scheduler import Scheduler
from naiad.services import jobs as job_service
from naiad.settings import Settings
from naiad.store import jobs, runs
from naiad.store.db import transaction
from naiad.store.tables import ExperimentRow, JobRow, utcnow
from naiad.testing import postgres


@dataclass
class RecordingExecutor:
    slots: int = 2
    nodes: int = 1
    started: list[str] = field(default_factory=list)
    phases: dict[str, ExecState] = field(default_factory=dict)
    stopped: list[str] = field(default_factory=list)
    collected: list[str] = field(default_factory=list)
    # per node {"CPU": .., "GPU": ..}: a cluster's nodes instead of one machine's slots
    cluster: list[dict[str, float]] | None = None
    grants: dict[str, int] = field(default_factory=dict)  # elastic jobs' hosts, as granted

    def capacity(self, running: Sequence[LaunchSpec]) -> Capacity:
        if self.cluster is None:
            hosts = [self.grants.get(s.job_name, s.nodes) for s in running]
            busy = sum(n * s.processes_per_node for n, s in zip(hosts, running, strict=True))
            return Slots(self.slots - busy, self.slots)
        pool = node_pool(self.cluster)
        for spec in running:  # what a cluster reports: its running gangs' room is taken
            assert pool.take(spec.nodes, spec.processes_per_node, spec.gpus) is None
        return pool

    def grow(self, spec: LaunchSpec, capacity: Capacity) -> None:
        have = self.grants.get(spec.job_name, spec.nodes)
        while have < (spec.max_nodes or 0) and capacity.take(1, spec.processes_per_node, 0) is None:
            have += 1
        self.grants[spec.job_name] = have

    def submit(self, spec: LaunchSpec) -> JobHandle:
        self.started.append(spec.job_name)
        self.phases[spec.job_name] = ExecState(Phase.STARTING)
        return JobHandle("recording", spec.job_name)

    def poll(self, spec: LaunchSpec) -> ExecState:
        return self.phases.get(spec.job_name, ExecState(Phase.LOST, "no supervisor"))

    def stop(self, spec: LaunchSpec, grace_s: float) -> None:
        self.stopped.append(spec.job_name)
        self.phases[spec.job_name] = ExecState(Phase.STOPPED, "Stopped on request.")

    def find(self, job_name: str) -> JobHandle | None:
        return None

    def collect_metrics(self, handle: JobHandle, run_id: str) -> Iterator[MetricBatch]:
        self.collected.append(handle.id)
        return iter(())

    def drop_metrics(self, handle: JobHandle, run_id: str, batch_ids: Collection[str]) -> None:
        pass


def source(state) -> str:  # type: ignore[no-untyped-def]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("train.py")
        info.size = 0
        tar.addfile(info, io.BytesIO(b""))
    state.artifacts.put_bytes("sources/x.tar.gz", buffer.getvalue())
    return "sources/x.tar.gz"


def submit(
    state,
    name: str,
    procs: int = 1,
    priority: int = 0,
    nodes: int = 1,
    gpus: int = 0,
    max_nodes: int | None = None,
) -> None:  # type: ignore[no-untyped-def]
    body = JobCreate(
        gpus=gpus,
        max_nodes=max_nodes,
        name=name,
        entrypoint="train.py",
        source_uri="sources/x.tar.gz",
        processes_per_node=procs,
        priority=priority,
        nodes=nodes,
    )
    with transaction(state.sessions) as session:
        job_service.submit(session, body, state.artifacts, slots=4, nodes=nodes)


def status(state, name: str) -> str:  # type: ignore[no-untyped-def]
    with transaction(state.sessions) as session:
        return jobs.get_row(session, name).status


def test_priority_then_fifo_within_slots(settings: Settings) -> None:
    state = build_state(settings)
    source(state)
    executor = RecordingExecutor(slots=2)
    scheduler = Scheduler(state, executor)
    submit(state, "a", procs=2)
    submit(state, "b")
    submit(state, "c")
    submit(state, "urgent", priority=10)
    scheduler.tick()
    assert executor.started == ["urgent"]  # a needs 2 slots; it waits, nobody overtakes it
    executor.phases["urgent"] = ExecState(Phase.SUCCEEDED)
    scheduler.tick()
    assert executor.started == ["urgent", "a"]
    assert status(state, "urgent") == Status.COMPLETED
    executor.phases["a"] = ExecState(Phase.RUNNING, attempt=0)
    scheduler.tick()
    assert status(state, "a") == Status.RUNNING and executor.started[-1] == "a"
    executor.phases["a"] = ExecState(Phase.FAILED, "exit code 1")
    scheduler.tick()
    assert executor.started == ["urgent", "a", "b", "c"]
    with transaction(state.sessions) as session:
        job = jobs.to_schema(session, jobs.get_row(session, "a"))
        run = runs.get_row(session, job.run_id)
        assert [t.status for t in job.transitions] == ["Pending", "Starting", "Running", "Failed"]
        assert job.status_reason == "exit code 1" and run.status == "Failed"
        assert jobs.get_row(session, "a").handle == {"executor": "recording", "id": "a"}
    assert executor.collected == ["urgent", "a"]  # each ended job's spool, by its handle
    state.engine.dispose()


def test_a_job_holds_a_slot_per_process_on_every_node(settings: Settings) -> None:
    state = build_state(settings)
    source(state)
    executor = RecordingExecutor(slots=4, nodes=2)
    scheduler = Scheduler(state, executor)
    submit(state, "wide", procs=2, nodes=2)
    submit(state, "small")
    scheduler.tick()
    assert executor.started == ["wide"]  # 2 nodes x 2 processes fill all 4 slots
    executor.phases["wide"] = ExecState(Phase.SUCCEEDED)
    scheduler.tick()
    assert executor.started == ["wide", "small"]
    state.engine.dispose()


def test_a_gang_waits_whole_saying_why_and_is_not_overtaken(settings: Settings) -> None:
    state = build_state(settings)
    source(state)
    cluster = [{"CPU": 4.0, "GPU": 1.0} for _ in range(3)]
    executor = RecordingExecutor(slots=12, nodes=3, cluster=cluster)
    scheduler = Scheduler(state, executor)
    submit(state, "one", gpus=1)
    submit(state, "gang", nodes=3, gpus=1)
    submit(state, "small")
    scheduler.tick()
    assert executor.started == ["one"]  # 3 nodes with a free GPU are needed; 2 are free
    with transaction(state.sessions) as session:
        row = jobs.get_row(session, "gang")
        assert row.status == Status.PENDING
        assert row.status_reason == (
            "Waiting for resources: needs 3 nodes with 1 CPU and 1 GPU free; 2 such free."
        )
    executor.phases["one"] = ExecState(Phase.SUCCEEDED)
    scheduler.tick()
    # the small job never jumped the gang; once it started, CPUs were left for it
    assert executor.started == ["one", "gang", "small"]
    state.engine.dispose()


def test_an_elastic_job_grows_into_what_the_queue_leaves_and_records_its_resizes(
    settings: Settings,
) -> None:
    state = build_state(settings)
    source(state)
    executor = RecordingExecutor(slots=4, nodes=4)
    scheduler = Scheduler(state, executor)
    submit(state, "elastic", nodes=1, max_nodes=4)
    submit(state, "wide", procs=2)
    scheduler.tick()
    # it starts on its fewest; the queue goes first; then it grows into the one slot left
    assert executor.started == ["elastic", "wide"]
    executor.phases["elastic"] = ExecState(Phase.RUNNING)
    scheduler.tick()
    assert executor.grants["elastic"] == 2
    submit(state, "big", procs=3)
    executor.phases["wide"] = ExecState(Phase.SUCCEEDED)
    scheduler.tick()
    # the head of the queue waits for 3 slots: the 2 freed are held for it, not grown into
    assert executor.grants["elastic"] == 2 and executor.started[-1] == "wide"
    resize = {"seq": 0, "at": 1.0e9, "from_workers": 0, "to_workers": 2, "reason": "started"}
    lost = {**resize, "seq": 1, "from_workers": 2, "to_workers": 1, "step": 40, "reason": "x"}
    executor.phases["elastic"] = ExecState(Phase.RUNNING, events=(resize, lost))
    scheduler.tick()
    scheduler.tick()  # the same events again: stored once
    with transaction(state.sessions) as session:
        job = jobs.to_schema(session, jobs.get_row(session, "elastic"))
    assert (job.nodes, job.max_nodes) == (1, 4)
    assert [(e.from_workers, e.to_workers, e.step) for e in job.events] == [
        (0, 2, None),
        (2, 1, 40),
    ]
    state.engine.dispose()


def test_stop_pending_and_running(settings: Settings) -> None:
    state = build_state(settings)
    source(state)
    executor = RecordingExecutor(slots=1)
    scheduler = Scheduler(state, executor)
    submit(state, "first")
    submit(state, "second")
    scheduler.tick()
    executor.phases["first"] = ExecState(Phase.RUNNING)
    with transaction(state.sessions) as session:
        for name in ("first", "second"):
            jobs.get_row(session, name).stop_requested = True
    scheduler.tick()
    assert executor.stopped == ["first"] and "second" not in executor.started
    assert status(state, "first") == Status.STOPPED
    assert status(state, "second") == Status.STOPPED
    state.engine.dispose()


def test_restart_marks_lost_jobs_failed(settings: Settings) -> None:
    state = build_state(settings)
    source(state)
    submit(state, "orphan")
    Scheduler(state, RecordingExecutor()).tick()  # launched by a server that then died
    Scheduler(state, RecordingExecutor()).tick()  # a new server: no supervisor is found
    with transaction(state.sessions) as session:
        row = jobs.get_row(session, "orphan")
        assert row.status == Status.FAILED and row.status_reason == "no supervisor"
    state.engine.dispose()


class Recorder:
    """A service that counts its wakes."""

    name = "recorder"
    wakes_on = (JobRow,)

    def __init__(self) -> None:
        self.wakes = 0

    def start(self) -> None: ...

    def wake(self) -> None:
        self.wakes += 1

    async def stop(self) -> None: ...


def test_committed_job_writes_wake_the_services_that_watch_jobs(settings: Settings) -> None:
    """A route only writes rows: the commit wakes the loop, a rollback or another table not."""
    state = build_state(settings)
    source(state)
    recorder = Recorder()
    state.services.start(recorder)
    state.services.watch(state.sessions)
    submit(state, "a")
    assert recorder.wakes == 1
    with transaction(state.sessions) as session:
        session.add(ExperimentRow(id=new_id(), name="other table", created_at=utcnow()))
    assert recorder.wakes == 1
    with pytest.raises(RuntimeError), transaction(state.sessions) as session:
        jobs.get_row(session, "a").stop_requested = True
        session.flush()
        raise RuntimeError("rolled back")
    with transaction(state.sessions) as session:
        assert not jobs.get_row(session, "a").stop_requested
    assert recorder.wakes == 1
    with transaction(state.sessions) as session:  # a SAVEPOINT released is not a commit
        jobs.get_row(session, "a").priority = 5
        session.flush()
        with session.begin_nested():
            session.add(ExperimentRow(id=new_id(), name="in a savepoint", created_at=utcnow()))
        assert recorder.wakes == 1  # nothing is visible to the loop before the commit
    assert recorder.wakes == 2
    recorder.wakes = 1
    scheduler = Scheduler(state, RecordingExecutor(), interval=3600)
    ticks: list[float] = []
    tick = scheduler.tick

    def counted() -> None:
        ticks.append(time.monotonic())
        tick()

    scheduler.tick = counted  # type: ignore[method-assign]
    state.services.start(scheduler)  # ticks once at start, then only when woken
    deadline = time.monotonic() + 10
    while recorder.wakes < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert status(state, "a") == Status.STARTING and recorder.wakes == 2
    time.sleep(0.5)
    assert len(ticks) == 1  # the tick's own write did not wake it again
    asyncio.run(state.services.stop())
    submit(state, "b")  # stopped: the listeners are gone
    assert recorder.wakes == 2
    state.engine.dispose()


@pytest.mark.postgres
def test_one_server_of_several_schedules_and_another_takes_over(
    postgres_url: str, tmp_path: Path
) -> None:
    """Two servers on one PostgreSQL database: one starts jobs, the other stands by until
    the first stops, then takes over; no job is started twice."""
    postgres.truncate_all(postgres_url)
    states = [
        build_state(
            Settings(home=tmp_path / f"home{i}", database_url=postgres_url, warm_start=False)
        )
        for i in range(2)
    ]
    source(states[0])
    executors = [RecordingExecutor(slots=1), RecordingExecutor(slots=1)]
    first, second = (Scheduler(s, e) for s, e in zip(states, executors, strict=True))
    submit(states[0], "a")
    submit(states[0], "b")
    first.tick()
    second.tick()
    second.tick()
    assert (executors[0].started, executors[1].started) == (["a"], [])
    first.close()  # that server stops: its lock goes with it
    executors[1].phases["a"] = ExecState(Phase.SUCCEEDED)  # what the cluster says of a
    second.tick()
    assert executors[1].started == ["b"] and status(states[0], "a") == Status.COMPLETED
    second.close()
    for state in states:
        state.engine.dispose()
