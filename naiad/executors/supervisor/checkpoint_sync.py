"""Checkpoints mirrored to the artifact store, so a retry on another machine can resume.

After every attempt ``checkpoints/`` is copied to ``jobs/<name>/checkpoints/`` (files
the script pruned are pruned there too); a supervisor that finds ``checkpoints/``
empty restores it from there before the first attempt.
"""

from naiad.executors.base import LaunchSpec
from naiad.executors.supervisor.outputs import job_store
from naiad.executors.supervisor.workdir import WorkDir


def _prefix(spec: LaunchSpec) -> str:
    return f"jobs/{spec.job_name}/checkpoints"


def _local_files(wd: WorkDir) -> dict[str, object]:
    """Finished files only: names starting with '.' are a save still being written."""
    return {
        p.relative_to(wd.checkpoints).as_posix(): p
        for p in sorted(wd.checkpoints.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def push(spec: LaunchSpec, wd: WorkDir) -> int:
    """Mirror ``checkpoints/`` to the store; returns how many files were uploaded."""
    store, prefix = job_store(spec), _prefix(spec)
    local = _local_files(wd)
    remote = {info.path[len(prefix) + 1 :] for info in store.list(prefix, recursive=True)}
    uploaded = 0
    for rel, path in local.items():
        if rel not in remote:
            store.put_file(f"{prefix}/{rel}", path)  # type: ignore[arg-type]
            uploaded += 1
    for rel in remote - set(local):
        store.delete(f"{prefix}/{rel}")
    return uploaded


def pull(spec: LaunchSpec, wd: WorkDir) -> int:
    """Restore ``checkpoints/`` from the store when it is empty here; returns files restored."""
    if _local_files(wd):
        return 0
    store, prefix = job_store(spec), _prefix(spec)
    if not store.list(prefix):
        return 0
    store.download(prefix, wd.checkpoints)
    return len(_local_files(wd))
