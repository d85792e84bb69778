"""A managed notebook's file run as a training job (the console's "Run as job").

The notebook's working directory is snapshotted as any job's source is (stored once by
content hash under ``sources/``), and the file becomes the job's entrypoint, run by the
notebook runner as ``naiad train NOTEBOOK.ipynb`` runs it. Jupyter's own folders
(``.ipynb_checkpoints`` and other hidden ones) are left out; the snapshot is packed as the
SDK packs a job's source directory.
"""

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from sqlalchemy.orm import Session

from naiad.core.errors import InvalidInput, PayloadTooLarge
from naiad.schemas.jobs import JobCreate
from naiad.schemas.notebooks import NotebookJobCreate
from naiad.sdk.sources import SourcePlan, pack, plan_source
from naiad.services import jobs as job_service
from naiad.store import notebooks
from naiad.store.artifacts import ArtifactStore, safe_path
from naiad.store.tables import JobRow

MAX_SNAPSHOT_BYTES = 512 * 1024 * 1024
SOURCE_TAG = "naiad.source.notebook"


def snapshot(files: Path) -> IO[bytes]:
    """A .tar.gz of the working files as ``naiad train --source`` packs a directory
    (``.naiadignore``, no symlinks, the same files give the same bytes), hidden files left
    out (Jupyter's ``.ipynb_checkpoints``, ``.virtual_documents``); the caller closes it."""
    plan = plan_source(files)
    shown = tuple(f for f in plan.files if not any(p.startswith(".") for p in f.arcname.split("/")))
    plan = SourcePlan(plan.root, shown)
    if plan.total > MAX_SNAPSHOT_BYTES:
        raise PayloadTooLarge(
            f"The notebook's files are over {MAX_SNAPSHOT_BYTES // 2**20} MiB; move data out "
            "of its folder (read it as an input channel) and try again."
        )
    return pack(plan)


MAX_LISTED = 1000


def notebook_files(session: Session, files_root: Path, name: str) -> list[str]:
    """The notebook's .ipynb files, by path under its folder, hidden ones (and Jupyter's
    checkpoints) left out; at most ``MAX_LISTED``."""
    notebooks.get(session, name)  # NotFound for an unknown notebook
    files = files_root / name / "files"
    found = []
    for path in sorted(files.rglob("*.ipynb")):
        relative = path.relative_to(files)
        if not any(part.startswith(".") for part in relative.parts):
            found.append(relative.as_posix())
        if len(found) >= MAX_LISTED:
            break
    return found


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
        have = notebook_files(session, files_root, name)[:10]
        raise InvalidInput(
            f"Notebook {name!r} has no file {path!r} (it has: {', '.join(have) or 'none'})."
        )
    with snapshot(files) as archive:
        digest = hashlib.sha256()
        while block := archive.read(1024 * 1024):
            digest.update(block)
        source = f"sources/{digest.hexdigest()}.tar.gz"  # as PUT /sources stores one
        if not store.exists(source):
            archive.seek(0)
            store.put_stream(source, archive)
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
