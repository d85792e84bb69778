"""/api/v1/runs/{run_id}/artifacts: upload (streamed, atomic), list, download."""

import mimetypes
import tempfile
from collections.abc import Iterator
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from naiad.core.errors import NotFound
from naiad.schemas.artifacts import Artifact
from naiad.server.deps import StateDep
from naiad.server.uploads import spool_body
from naiad.store import runs
from naiad.store.artifacts import safe_path
from naiad.store.db import transaction

router = APIRouter(prefix="/runs/{run_id}/artifacts", tags=["artifacts"])

_CHUNK = 1024 * 1024
# Types a browser shows without running anything; the rest download as attachments.
_INLINE = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "text/plain",
        "text/csv",
        "application/json",
    }
)


def _run_prefix(state: StateDep, run_id: str) -> str:
    with transaction(state.sessions) as session:
        runs.get_row(session, run_id)
    return f"runs/{run_id}/artifacts"


@router.put("/{path:path}", status_code=201)
async def upload_artifact(run_id: str, path: str, request: Request, state: StateDep) -> Artifact:
    """The body is the file. It is spooled, then stored in one atomic write."""
    rel = safe_path(path)
    prefix = await run_in_threadpool(_run_prefix, state, run_id)
    limit = state.settings.max_artifact_bytes
    with tempfile.SpooledTemporaryFile(max_size=8 * _CHUNK) as spool:
        too_large = (
            f"Artifacts over {limit} bytes are refused; raise NAIAD_MAX_ARTIFACT_BYTES "
            "on the server or split the file."
        )
        await spool_body(request, spool, limit, too_large)
        written = await run_in_threadpool(state.artifacts.put_stream, f"{prefix}/{rel}", spool)
    return Artifact(path=rel, is_dir=False, size=written)


@router.get("")
def list_artifacts(
    run_id: str,
    state: StateDep,
    path: str = "",
    recursive: Annotated[bool, Query()] = False,
) -> list[Artifact]:
    prefix = _run_prefix(state, run_id)
    target = f"{prefix}/{safe_path(path)}" if path else prefix
    return [
        Artifact(path=info.path[len(prefix) + 1 :], is_dir=info.is_dir, size=info.size)
        for info in state.artifacts.list(target, recursive=recursive)
    ]


# An HTML artifact shown in the console's frame (an executed notebook): its own styles and
# embedded images, no script, no request anywhere, a unique origin (CSP sandbox).
VIEW_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:"


@router.get("/{path:path}")
def download_artifact(
    run_id: str, path: str, state: StateDep, view: bool = False
) -> StreamingResponse:
    """The file; ``view`` serves an HTML file inline, sandboxed, for the console's preview."""
    rel = safe_path(path)
    full = f"{_run_prefix(state, run_id)}/{rel}"
    try:
        size = state.artifacts.size(full)
        handle = state.artifacts.open(full)
    except (FileNotFoundError, IsADirectoryError):
        raise NotFound(
            f"Run {run_id} has no artifact file {rel!r}; list them with "
            f"GET /api/v1/runs/{run_id}/artifacts."
        ) from None

    def chunks() -> Iterator[bytes]:
        with handle:
            while block := handle.read(_CHUNK):
                yield block

    media = mimetypes.guess_type(rel)[0] or "application/octet-stream"
    headers = {"content-length": str(size), "x-content-type-options": "nosniff"}
    if view and media == "text/html":
        headers["content-security-policy"] = VIEW_CSP
    elif media not in _INLINE:  # a run's HTML or SVG must not run as a page of the console
        name = quote(rel.rsplit("/", 1)[-1])
        headers["content-disposition"] = f"attachment; filename*=UTF-8''{name}"
    return StreamingResponse(chunks(), media_type=media, headers=headers)
