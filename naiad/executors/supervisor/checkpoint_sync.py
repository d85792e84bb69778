"""Checkpoints mirrored to the artifact store, so a retry on another machine can resume.

After every attempt ``checkpoints/`` is copied to the job's checkpoint location:
``jobs/<name>/checkpoints/`` in the artifact store, or ``checkpoint_uri`` when the job
names one (a path in the store, or ``s3://bucket/prefix``). A supervisor that finds
``checkpoints/`` empty restores it from there before the first attempt, so a new job
given an earlier job's location resumes from that job's checkpoints (SageMaker's
``CheckpointConfig``).

A host of a gang spread over machines (the Ray executor) also mirrors while it runs
(``Mirror``), since its machine may be lost with its disk: every few seconds, the files
that have not changed for a moment. Every host mirrors to the same location, so a
sharded checkpoint (a file per rank) is whole there, and every host restores all of it.

An elastic job's host on Ray mirrors both ways (``exchange``): each round's rank 0 may
be on another host, and it resumes from what it has locally, so every host also takes
the checkpoints the others wrote, and drops those they pruned.

A file the script pruned is pruned there too, but only a file this job's mirror knows
(it restored it, or put it there): ``checkpoint_sync.json`` in the job's directory names
them, so a location that holds other files never loses them to a job's pruning.
"""

import threading
import time
from collections.abc import Callable
from pathlib import Path

from naiad.executors.base import LaunchSpec
from naiad.executors.supervisor.outputs import job_store
from naiad.executors.supervisor.staging import store_and_path
from naiad.executors.supervisor.workdir import WorkDir, read_json, write_json_atomic
from naiad.store.artifacts import ArtifactStore

MANIFEST = "checkpoint_sync.json"
SETTLED_S = 1.0  # a file unchanged this long, mid-attempt, is taken to be written


def location(spec: LaunchSpec) -> tuple[ArtifactStore, str]:
    """The store and prefix the job's checkpoints are mirrored to."""
    if not spec.checkpoint_uri:
        return job_store(spec), f"jobs/{spec.job_name}/checkpoints"
    store, prefix = store_and_path(spec.checkpoint_uri, spec)
    return store, prefix.strip("/")


def describe(spec: LaunchSpec) -> str:
    """Where the checkpoints go, for the job log."""
    return spec.checkpoint_uri or "the artifact store"


def _local_files(wd: WorkDir, settled_s: float = 0.0) -> dict[str, Path]:
    """Finished files only: a name starting with '.' (the file's or a folder's) is a save
    still being written, as is one changed less than ``settled_s`` ago."""
    files = {}
    now = time.time()
    for p in sorted(wd.checkpoints.rglob("*")):
        rel = p.relative_to(wd.checkpoints)
        if any(part.startswith(".") for part in rel.parts) or not p.is_file():
            continue
        if settled_s:
            try:
                if now - p.stat().st_mtime < settled_s:
                    continue
            except OSError:
                continue
        files[rel.as_posix()] = p
    return files


def _known(wd: WorkDir) -> set[str]:
    names = (read_json(wd.root / MANIFEST) or {}).get("known")
    return {n for n in names if isinstance(n, str)} if isinstance(names, list) else set()


def _remember(wd: WorkDir, names: set[str]) -> None:
    write_json_atomic(wd.root / MANIFEST, {"known": sorted(names)})


def _join(prefix: str, rel: str) -> str:
    return f"{prefix}/{rel}" if prefix else rel


def push(spec: LaunchSpec, wd: WorkDir, settled_s: float = 0.0) -> int:
    """Mirror ``checkpoints/`` to its location; returns how many files were uploaded
    (``settled_s``: only files unchanged for that long, while the script may be writing)."""
    store, prefix = location(spec)
    local = _local_files(wd, settled_s)
    start = len(prefix) + 1 if prefix else 0
    remote = {info.path[start:] for info in store.list(prefix, recursive=True)}
    uploaded = 0
    for rel, path in local.items():
        if rel not in remote:
            store.put_file(_join(prefix, rel), path)
            uploaded += 1
    present = set(_local_files(wd))  # a file still being written is not pruned
    for rel in (remote & _known(wd)) - present:
        store.delete(_join(prefix, rel))
    _remember(wd, set(local) | (_known(wd) & present))
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


def exchange(spec: LaunchSpec, wd: WorkDir, settled_s: float = SETTLED_S) -> None:
    """Both ways: upload what this host wrote, download what other hosts wrote, and drop
    here what they pruned there (a file this host knows that is no longer there) and
    there what was pruned here."""
    store, prefix = location(spec)
    start = len(prefix) + 1 if prefix else 0
    remote = {info.path[start:] for info in store.list(prefix, recursive=True)}
    known = _known(wd)
    for rel, path in _local_files(wd, settled_s).items():
        if rel in remote:
            continue
        if rel in known:  # pruned elsewhere
            path.unlink(missing_ok=True)
            known.discard(rel)
        else:
            store.put_file(_join(prefix, rel), path)
            known.add(rel)
    present = set(_local_files(wd))
    for rel in (remote & known) - present:  # pruned here
        store.delete(_join(prefix, rel))
        known.discard(rel)
    for rel in sorted(remote - known - present):  # written elsewhere
        dest = wd.checkpoints / rel
        part = dest.with_name(f".{dest.name}.part")  # unseen by checkpoints.latest until whole
        part.parent.mkdir(parents=True, exist_ok=True)
        try:
            store.download(_join(prefix, rel), part)
        except Exception:  # pruned by its writer since the listing: nothing to take
            part.unlink(missing_ok=True)
            continue
        part.replace(dest)
        known.add(rel)
    _remember(wd, known)


class Mirror:
    """Pushes ``checkpoints/`` every ``every_s`` seconds in a thread of its own, so a
    slow upload never delays watching the job; ``poke`` starts one when it is time.
    ``both_ways``: ``exchange`` instead, for an elastic job's host."""

    def __init__(
        self,
        spec: LaunchSpec,
        wd: WorkDir,
        log: Callable[[str], None],
        every_s: float = 2.0,
        both_ways: bool = False,
    ) -> None:
        self.spec, self.wd, self.log, self.every_s = spec, wd, log, every_s
        self.both_ways = both_ways
        self.last = time.monotonic()
        self.thread: threading.Thread | None = None
        self.failed_said = False

    def poke(self) -> None:
        if self.thread is not None and self.thread.is_alive():
            return
        if time.monotonic() - self.last < self.every_s:
            return
        self.last = time.monotonic()
        self.thread = threading.Thread(target=self._push, name="naiad-ckpt-mirror", daemon=True)
        self.thread.start()

    def _push(self) -> None:
        try:
            if self.both_ways:
                exchange(self.spec, self.wd)
            else:
                push(self.spec, self.wd, settled_s=SETTLED_S)
        except Exception as exc:
            if not self.failed_said:  # once: the final push after the attempt says it again
                self.failed_said = True
                self.log(f"could not copy checkpoints to {describe(self.spec)}: {exc}")

    def wait(self) -> None:
        if self.thread is not None:
            self.thread.join()
