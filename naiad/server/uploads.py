"""Request bodies that are files: spooled to a temporary file with a size limit."""

import hashlib
from typing import IO

from fastapi import Request

from naiad.core.errors import PayloadTooLarge


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
        into.write(chunk)
    into.seek(0)
    return digest
