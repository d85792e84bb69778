"""Building blocks for job tests: a source snapshot in a store, a LaunchSpec, waiting."""

import io
import tarfile
import textwrap
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from naiad.executors.base import ExecState, Executor, LaunchSpec
from naiad.store.artifacts import ArtifactStore


def source_tarball(files: Mapping[str, str | bytes]) -> bytes:
    """A .tar.gz of ``{path: text or bytes}`` (texts dedented), as the SDK packs a source
    directory or SageMaker a model.tar.gz."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path, text in files.items():
            body = text if isinstance(text, bytes) else textwrap.dedent(text).encode()
            info = tarfile.TarInfo(path)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return buf.getvalue()


def launch_spec(
    root: Path, store: ArtifactStore, files: dict[str, str], name: str = "job", **fields: Any
) -> LaunchSpec:
    """A LaunchSpec for a job running ``train.py`` from ``files``, its snapshot put in ``store``."""
    store.put_bytes(f"sources/{name}.tar.gz", source_tarball(files))
    return LaunchSpec(
        job_name=name,
        run_id=f"run-{name}",
        work_dir=root / "jobs" / name,
        source_uri=f"sources/{name}.tar.gz",
        entrypoint="train.py",
        output_uri=f"jobs/{name}/output",
        artifact_root=store.uri,
        stop_grace_s=2.0,
        **fields,
    )


def wait_terminal(executor: Executor, spec: LaunchSpec, timeout: float = 30.0) -> ExecState:
    """Poll until the job ends; on a timeout, fail with the job's log."""
    deadline = time.monotonic() + timeout
    state = executor.poll(spec)
    while not state.phase.terminal:
        if time.monotonic() > deadline:
            log = spec.work_dir / "logs" / "job.log"
            text = log.read_text(errors="replace") if log.exists() else "(no log)"
            raise AssertionError(f"{spec.job_name} still {state.phase} after {timeout}s:\n{text}")
        time.sleep(0.1)
        state = executor.poll(spec)
    return state
