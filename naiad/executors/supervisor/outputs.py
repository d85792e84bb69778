"""What a finished job leaves in the artifact store: model.tar.gz, output.tar.gz, its logs.

The archives are laid out as SageMaker's (the directory's entries at the archive's
root), so a model trained here unpacks where SageMaker tooling expects it.
"""

import os
import tarfile
from pathlib import Path

from naiad.executors.base import LaunchSpec
from naiad.executors.supervisor.workdir import WorkDir
from naiad.store.artifacts import ArtifactStore, open_artifact_store


def job_store(spec: LaunchSpec) -> ArtifactStore:
    return open_artifact_store(spec.artifact_root, s3_endpoint_url=spec.s3_endpoint_url)


def output_location(spec: LaunchSpec) -> tuple[ArtifactStore, str]:
    """The store and prefix ``output_uri`` names (a path in the job's store, or a full URI)."""
    uri = spec.output_uri or f"jobs/{spec.job_name}/output"
    if "://" in uri or os.path.isabs(uri):
        return open_artifact_store(uri, s3_endpoint_url=spec.s3_endpoint_url), ""
    return job_store(spec), uri.strip("/")


def pack(src: Path, archive: Path) -> Path:
    """``src``'s entries at the root of a .tar.gz (an empty directory gives an empty archive)."""
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "w:gz") as tar:
        if src.is_dir():
            for entry in sorted(src.iterdir()):
                tar.add(entry, arcname=entry.name)
    return archive


def _join(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


def upload_results(spec: LaunchSpec, wd: WorkDir) -> list[str]:
    """Pack and upload ``model/`` and ``output/data``; returns the URIs written."""
    store, prefix = output_location(spec)
    staging = wd.root / ".naiad-out"
    written = []
    for src, name in ((wd.model, "model.tar.gz"), (wd.output_data, "output.tar.gz")):
        archive = pack(src, staging / name)
        try:
            store.put_file(_join(prefix, name), archive)
        finally:
            archive.unlink(missing_ok=True)
        written.append(store.uri_for(_join(prefix, name)))
    staging.rmdir()
    return written


def upload_logs(spec: LaunchSpec, wd: WorkDir, host: str | None = None) -> None:
    """Every file under ``logs/`` to ``jobs/<name>/logs/`` (a gang's host: to
    ``jobs/<name>/logs/<host>/``), same relative paths."""
    store = job_store(spec)
    base = f"jobs/{spec.job_name}/logs" + (f"/{host}" if host else "")
    for path in sorted(p for p in wd.logs.rglob("*") if p.is_file()):
        rel = path.relative_to(wd.logs).as_posix()
        store.put_file(f"{base}/{rel}", path)
