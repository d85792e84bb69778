"""Elastic jobs' parts without processes: the node range, the request's checks, the
resize events built from rank 0's round reports, the local executor's grant, and the
two-way checkpoint mirror of an elastic job's hosts on Ray."""

import json
import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from naiad.core.errors import InvalidInput
from naiad.executors.base import LaunchSpec
from naiad.executors.capacity import Slots
from naiad.executors.local import LocalExecutor
from naiad.executors.supervisor import checkpoint_sync
from naiad.executors.supervisor.elastic import Resizes, read_rounds
from naiad.executors.supervisor.workdir import WorkDir
from naiad.schemas.jobs import JobCreate, node_range


def test_nodes_take_a_count_or_a_range() -> None:
    assert node_range("2") == (2, None)
    assert node_range("1:4") == (1, 4)
    assert node_range(3) == (3, None)
    for bad in ("4:2", "0", "a:b", "1:"):
        with pytest.raises(InvalidInput, match="MIN:MAX"):
            node_range(bad)


def test_an_elastic_request_is_checked() -> None:
    base = {"name": "j", "entrypoint": "t.py", "source_uri": "sources/x.tar.gz"}
    assert JobCreate(**base, nodes=1, max_nodes=4).max_nodes == 4
    with pytest.raises(ValidationError, match="max_nodes \\(1\\) is below nodes \\(2\\)"):
        JobCreate(**base, nodes=2, max_nodes=1)
    with pytest.raises(ValidationError, match="a command cannot re-form its world"):
        JobCreate(name="j", command=["python", "t.py"], nodes=1, max_nodes=2)


def write_round(folder: Path, pid: int, **data: object) -> None:
    (folder / f"round-{pid}.json").write_text(json.dumps({"at": float(pid), **data}))


def test_rounds_and_host_changes_become_resize_events(tmp_path: Path) -> None:
    resizes, seen = Resizes(), {}
    write_round(tmp_path, 1, world_size=2, step=0)
    for r in read_rounds(tmp_path, seen):
        resizes.report(r)
    resizes.settle()
    resizes.host_changed("algo-2 was lost (killed by SIGKILL)")
    write_round(tmp_path, 2, world_size=1)  # its size first; the step once it has loaded
    for r in read_rounds(tmp_path, seen):
        resizes.report(r)
    resizes.settle()
    assert len(resizes.events) == 1  # waiting for the step
    write_round(tmp_path, 2, world_size=1, step=40)
    os.utime(tmp_path / "round-2.json", (10.0, 10.0))  # a rewrite: seen again by its mtime
    for r in read_rounds(tmp_path, seen):
        resizes.report(r)
    resizes.settle()
    write_round(tmp_path, 3, world_size=1, step=45)  # the same world re-formed: no resize
    for r in read_rounds(tmp_path, seen):
        resizes.report(r)
    resizes.settle()
    resizes.host_changed("algo-2 joined again")
    write_round(tmp_path, 4, world_size=2)
    for r in read_rounds(tmp_path, seen):
        resizes.report(r)
    resizes.settle(final=True)  # the attempt ended before it said its step
    got = [(e["from_workers"], e["to_workers"], e["step"], e["reason"]) for e in resizes.events]
    assert got == [
        (0, 2, 0, "started"),
        (2, 1, 40, "algo-2 was lost (killed by SIGKILL)"),
        (1, 2, None, "algo-2 joined again"),
    ]
    assert [e["seq"] for e in resizes.events] == [0, 1, 2]


def elastic_spec(work_dir: Path, artifacts: Path, name: str = "el") -> LaunchSpec:
    return LaunchSpec(
        job_name=name,
        run_id="r1",
        work_dir=work_dir,
        source_uri=None,
        entrypoint="t.py",
        nodes=1,
        max_nodes=3,
        artifact_root=artifacts.as_uri(),
    )


def test_the_local_executor_grants_an_elastic_job_free_hosts(tmp_path: Path) -> None:
    executor = LocalExecutor(tmp_path / "jobs", slots=4)
    spec = elastic_spec(tmp_path / "jobs" / "el", tmp_path / "artifacts")
    spec.work_dir.mkdir(parents=True)
    assert executor.capacity([spec]).free == 3  # its fewest hosts until granted more
    executor.grow(spec, Slots(free=1, total=4))
    assert json.loads(WorkDir(spec.work_dir).grant_file.read_text()) == {"nodes": 2}
    assert executor.capacity([spec]).free == 2
    executor.grow(spec, Slots(free=4, total=4))  # never past max_nodes
    assert executor.capacity([spec]).free == 1


def test_elastic_hosts_share_checkpoints_both_ways(tmp_path: Path) -> None:
    a = elastic_spec(tmp_path / "a", tmp_path / "artifacts")
    b = elastic_spec(tmp_path / "b", tmp_path / "artifacts")
    wa, wb = WorkDir(a.work_dir), WorkDir(b.work_dir)
    for wd in (wa, wb):
        wd.checkpoints.mkdir(parents=True)
    (wa.checkpoints / "ckpt-000000000005.pt").write_bytes(b"five")
    checkpoint_sync.exchange(a, wa, settled_s=0)
    checkpoint_sync.exchange(b, wb, settled_s=0)  # b takes what a wrote
    assert (wb.checkpoints / "ckpt-000000000005.pt").read_bytes() == b"five"
    (wa.checkpoints / "ckpt-000000000005.pt").unlink()  # a prunes 5 and writes 10
    (wa.checkpoints / "ckpt-000000000010.pt").write_bytes(b"ten")
    checkpoint_sync.exchange(a, wa, settled_s=0)
    checkpoint_sync.exchange(b, wb, settled_s=0)  # b drops 5 and takes 10
    assert sorted(p.name for p in wb.checkpoints.iterdir()) == ["ckpt-000000000010.pt"]
    (wb.checkpoints / "ckpt-000000000015.pt").write_bytes(b"fifteen")  # b is rank 0 now
    checkpoint_sync.exchange(b, wb, settled_s=0)
    checkpoint_sync.exchange(a, wa, settled_s=0)
    assert sorted(p.name for p in wa.checkpoints.iterdir()) == [
        "ckpt-000000000010.pt",
        "ckpt-000000000015.pt",
    ]


def test_a_retry_numbers_its_resizes_after_the_earlier_attempts(tmp_path: Path) -> None:
    earlier = [{"seq": 0, "at": 1.0, "from_workers": 0, "to_workers": 2, "step": 0, "reason": "x"}]
    resizes = Resizes(list(earlier))  # what the job's state kept from attempt 0
    write_round(tmp_path, 7, world_size=2, step=35)
    for r in read_rounds(tmp_path, {}):
        resizes.report(r)
    resizes.settle()
    assert [(e["seq"], e["from_workers"], e["reason"]) for e in resizes.events] == [
        (0, 0, "x"),
        (1, 0, "started"),
    ]
