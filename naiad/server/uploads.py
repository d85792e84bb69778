"""Request bodies that are files: spooled to a temporary file with a size limit."""

import hashlib
import tempfile
from typing import IO

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from naiad.core.errors import InvalidInput, PayloadTooLarge
from naiad.store.artifacts import ArtifactStore

_GZIP_MAGIC = b"\x1f\x8b"


async def spool_body(
    request: Request, into: IO[bytes], limit: int, too_large: str
) -> "hashlib._Hash":
    """Copy the body into ``into`` (rewound at the end); its sha256 comes back.

    ``too_large`` is the sentence a client gets when the body passes ``limit`` bytes.
    """
    digest = hashlib.sha256()
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(too_large)
        digest.update(chunk)
        try:
            into.write(chunk)
        except OSError as exc:  # past 8 MiB the body spills to a file in the temp directory
            if exc.filename or exc.errno is None:
                raise
            raise OSError(exc.errno, exc.strerror, tempfile.gettempdir()) from exc
    into.seek(0)
    return digest


async def store_archive(
    request: Request, store: ArtifactStore, prefix: str, limit: int, too_large: str, what: str
) -> tuple[str, int]:
    """A .tar.gz body stored once by content hash under ``prefix``: (its path, its size)."""
    with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as spool:
        digest = await spool_body(request, spool, limit, too_large)
        size = spool.seek(0, 2)
        spool.seek(0)
        if spool.read(2) != _GZIP_MAGIC:
            raise InvalidInput(f"{what} must be a gzip-compressed tar archive (.tar.gz).")
        spool.seek(0)
        path = f"{prefix}/{digest.hexdigest()}.tar.gz"
        if not store.exists(path):
            await run_in_threadpool(store.put_stream, path, spool)
    return path, size
