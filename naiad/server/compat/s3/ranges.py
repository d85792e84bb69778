"""The parts of a GET that choose what to send: ``Range`` (one range, as S3 takes) and the
conditional headers (``If-Match``, ``If-None-Match``, ``If-Modified-Since``,
``If-Unmodified-Since``, and their ``x-amz-copy-source-`` twins on a copy)."""

import re
from datetime import datetime
from email.utils import parsedate_to_datetime

from naiad.server.compat.s3.errors import S3Error

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class Unsatisfiable(Exception):
    """The range starts past the end of the object (416)."""


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive (first, last) byte a ``Range`` header asks of an object of ``size``
    bytes; None to send it whole (no header, or one S3 ignores: several ranges, bad syntax).
    """
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match[1], match[2]
    if not first:
        if not last:
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable
        return max(0, size - suffix), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        raise Unsatisfiable
    return start, min(end, size - 1)


def copy_range(header: str, size: int) -> tuple[int, int]:
    """The ``x-amz-copy-source-range`` of UploadPartCopy: ``bytes=first-last``, inside the
    source."""
    match = _RANGE.fullmatch(header.strip())
    if match is None or not match[1] or not match[2] or int(match[2]) < int(match[1]):
        raise S3Error(
            "InvalidArgument",
            f"x-amz-copy-source-range {header!r} is not 'bytes=first-last'.",
            400,
        )
    first, last = int(match[1]), int(match[2])
    if last >= size:
        raise S3Error(
            "InvalidRange",
            f"x-amz-copy-source-range {header!r} reaches past the source's {size} bytes.",
            416,
        )
    return first, last


def _etag_matches(header: str, etag: str) -> bool:
    wanted = {tag.strip().removeprefix("W/").strip('"') for tag in header.split(",")}
    return "*" in wanted or etag.strip('"') in wanted


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else None


def precondition(
    headers: dict[str, str], etag: str, modified: datetime, prefix: str = ""
) -> int | None:
    """The status the conditional headers call for (412, or 304 for a read), or None to go
    on. ``prefix`` is ``x-amz-copy-source-`` for a copy's source, where every miss is 412."""
    name = f"{prefix}if-" if prefix else "if-"
    modified = modified.replace(microsecond=0)  # Last-Modified has whole seconds
    if_match = headers.get(f"{name}match")
    if if_match is not None:
        if not _etag_matches(if_match, etag):
            return 412
    else:
        since = _date(headers.get(f"{name}unmodified-since"))
        if since is not None and modified > since:
            return 412
    not_modified = 412 if prefix else 304
    if_none_match = headers.get(f"{name}none-match")
    if if_none_match is not None:
        return not_modified if _etag_matches(if_none_match, etag) else None
    since = _date(headers.get(f"{name}modified-since"))
    if since is not None and modified <= since:
        return not_modified
    return None
