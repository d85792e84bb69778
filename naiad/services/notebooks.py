"""A managed notebook's file run as a training job (the console's "Run as job").

The notebook's working directory is snapshotted as any job's source is (stored once by
content hash under ``sources/``), and the file becomes the job's entrypoint, run by the
notebook runner as ``naiad train NOTEBOOK.ipynb`` runs it. Jupyter's own folders
(``.ipynb_checkpoints`` and other hidden ones) are left out.
"""

import hashlib
import io
import tarfile
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session

from naiad.core.errors import InvalidInput, PayloadTooLarge
from naiad.schemas.jobs import JobCreate
from naiad.schemas.notebooks import NotebookJobCreate
from naiad.services import jobs as job_service
from naiad.store import notebooks
from naiad.store.artifacts import ArtifactStore, safe_path
from naiad.store.tables import JobRow

MAX_SNAPSHOT_BYTES = 512 * 1024 * 1024
SOURCE_TAG = "naiad.source.notebook"


def snapshot(files: Path) -> bytes:
    """A .tar.gz of the working files (hidden ones left out), made the same way each time
    (sorted, times zeroed) so the same files give the same content hash."""
    buffer = io.BytesIO()
    total = 0
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as tar:
        for path in sorted(files.rglob("*")):
            rel = path.relative_to(files)
            if any(part.startswith(".") for part in rel.parts) or not path.is_file():
                continue
            if path.is_symlink():
                continue
            total += path.stat().st_size
            if total > MAX_SNAPSHOT_BYTES:
                raise PayloadTooLarge(
                    f"The notebook's files are over {MAX_SNAPSHOT_BYTES // 2**20} MiB; move "
                    "data out of its folder (read it as an input channel) and try again."
                )
            info = tar.gettarinfo(str(path), arcname=rel.as_posix())
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            with open(path, "rb") as handle:
                tar.addfile(info, handle)
    return buffer.getvalue()


def run_as_job(
    session: Session,
    store: ArtifactStore,
    files_root: Path,
    name: str,
    body: NotebookJobCreate,
    slots: int,
    nodes: int | None,
) -> JobRow:
    """Submit ``body.path`` of notebook ``name`` as a training job."""
    notebooks.get(session, name)  # NotFound for an unknown notebook
    path = safe_path(body.path)
    files = files_root / name / "files"
    if not path.endswith(".ipynb"):
        raise InvalidInput(f"{body.path!r} is not a notebook (.ipynb); pick one to run.")
    if not (files / path).is_file():
        have = sorted(p.name for p in files.glob("*.ipynb"))[:10]
        raise InvalidInput(
            f"Notebook {name!r} has no file {path!r} (it has: {', '.join(have) or 'none'})."
        )
    archive = snapshot(files)
    source = f"sources/{hashlib.sha256(archive).hexdigest()}.tar.gz"
    if not store.exists(source):
        store.put_bytes(source, archive)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    stem = Path(path).stem.lower().replace("_", "-").replace(".", "-")
    job = JobCreate(
        name=body.job_name or f"{stem[:40].strip('-') or 'notebook'}-{stamp}",
        entrypoint=path,
        source_uri=source,
        experiment=body.experiment or name,
        hyperparameters=body.hyperparameters,
        processes_per_node=body.processes_per_node,
    )
    return job_service.submit(session, job, store, slots, nodes, tags={SOURCE_TAG: name})
