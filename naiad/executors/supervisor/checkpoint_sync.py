"""Checkpoints mirrored to the artifact store, so a retry on another machine can resume.

After every attempt ``checkpoints/`` is copied to the job's checkpoint location:
``jobs/<name>/checkpoints/`` in the artifact store, or ``checkpoint_uri`` when the job
names one (a path in the store, or ``s3://bucket/prefix``). A supervisor that finds
``checkpoints/`` empty restores it from there before the first attempt, so a new job
given an earlier job's location resumes from that job's checkpoints (SageMaker's
``CheckpointConfig``).

A file the script pruned is pruned there too, but only a file this job's mirror knows
(it restored it, or put it there): ``checkpoint_sync.json`` in the job's directory names
them, so a location that holds other files never loses them to a job's pruning.
"""

from pathlib import Path

from naiad.executors.base import LaunchSpec
from naiad.executors.supervisor.outputs import job_store
from naiad.executors.supervisor.staging import store_and_path
from naiad.executors.supervisor.workdir import WorkDir, read_json, write_json_atomic
from naiad.store.artifacts import ArtifactStore

MANIFEST = "checkpoint_sync.json"


def location(spec: LaunchSpec) -> tuple[ArtifactStore, str]:
    """The store and prefix the job's checkpoints are mirrored to."""
    if not spec.checkpoint_uri:
        return job_store(spec), f"jobs/{spec.job_name}/checkpoints"
    store, prefix = store_and_path(spec.checkpoint_uri, spec)
    return store, prefix.strip("/")


def describe(spec: LaunchSpec) -> str:
    """Where the checkpoints go, for the job log."""
    return spec.checkpoint_uri or "the artifact store"


def _local_files(wd: WorkDir) -> dict[str, Path]:
    """Finished files only: names starting with '.' are a save still being written."""
    return {
        p.relative_to(wd.checkpoints).as_posix(): p
        for p in sorted(wd.checkpoints.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def _known(wd: WorkDir) -> set[str]:
    names = (read_json(wd.root / MANIFEST) or {}).get("known")
    return {n for n in names if isinstance(n, str)} if isinstance(names, list) else set()


def _remember(wd: WorkDir, names: set[str]) -> None:
    write_json_atomic(wd.root / MANIFEST, {"known": sorted(names)})


def _join(prefix: str, rel: str) -> str:
    return f"{prefix}/{rel}" if prefix else rel


def push(spec: LaunchSpec, wd: WorkDir) -> int:
    """Mirror ``checkpoints/`` to its location; returns how many files were uploaded."""
    store, prefix = location(spec)
    local = _local_files(wd)
    start = len(prefix) + 1 if prefix else 0
    remote = {info.path[start:] for info in store.list(prefix, recursive=True)}
    uploaded = 0
    for rel, path in local.items():
        if rel not in remote:
            store.put_file(_join(prefix, rel), path)
            uploaded += 1
    for rel in (remote & _known(wd)) - set(local):
        store.delete(_join(prefix, rel))
    _remember(wd, set(local))
    return uploaded


def pull(spec: LaunchSpec, wd: WorkDir) -> int:
    """Restore ``checkpoints/`` from its location when it is empty here; returns files restored."""
    if _local_files(wd):
        return 0
    store, prefix = location(spec)
    if not store.list(prefix):
        return 0
    store.download(prefix, wd.checkpoints)
    restored = _local_files(wd)
    _remember(wd, set(restored))
    return len(restored)
