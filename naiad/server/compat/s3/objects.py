"""Object operations: PutObject, GetObject, HeadObject, DeleteObject, DeleteObjects and
CopyObject. Bodies stream between the socket and the store in chunks, in worker threads."""

import hashlib
import io
import os
from collections.abc import AsyncGenerator
from typing import Any, BinaryIO
from urllib.parse import unquote

from naiad.server.compat.s3.call import CHUNK, Call, Reply, http_date, slow_xml, xml_reply
from naiad.server.compat.s3.errors import (
    S3Error,
    no_such_bucket,
    no_such_key,
    precondition_failed,
)
from naiad.server.compat.s3.layout import (
    DEFAULT_TYPE,
    READ_ONLY,
    ObjectInfo,
    Volume,
    check_name_or_missing,
    read_only,
)
from naiad.server.compat.s3.ranges import Unsatisfiable, byte_range, precondition
from naiad.server.compat.s3.xml import (
    MAX_BODY,
    MalformedXML,
    Node,
    children,
    document,
    element,
    parse,
    text,
)

KEPT_HEADERS = ("cache-control", "content-disposition", "content-language", "expires")
_OVERRIDES = {  # GetObject's response-* query parameters, for presigned links
    "response-content-type": "content-type",
    "response-content-disposition": "content-disposition",
    "response-content-encoding": "content-encoding",
    "response-content-language": "content-language",
    "response-cache-control": "cache-control",
    "response-expires": "expires",
}
MAX_DELETE = 1000
EMPTY_ETAG = f'"{hashlib.md5(b"", usedforsecurity=False).hexdigest()}"'


# -- what a write keeps ---------------------------------------------------------------------


def user_metadata(headers: dict[str, str]) -> dict[str, str]:
    return {
        k.removeprefix("x-amz-meta-"): v for k, v in headers.items() if k.startswith("x-amz-meta-")
    }


def kept_headers(headers: dict[str, str]) -> dict[str, str]:
    kept = {name: headers[name] for name in KEPT_HEADERS if name in headers}
    encodings = [e.strip() for e in headers.get("content-encoding", "").split(",")]
    encoding = ", ".join(e for e in encodings if e and e != "aws-chunked")
    if encoding:
        kept["content-encoding"] = encoding
    return kept


def object_headers(info: ObjectInfo) -> dict[str, str]:
    headers = {
        "etag": info.etag,
        "last-modified": http_date(info),
        "content-type": info.content_type,
        "accept-ranges": "bytes",
        **info.headers,
    }
    headers.update({f"x-amz-meta-{k}": v for k, v in info.metadata.items()})
    return headers


# -- checks shared by the operations ---------------------------------------------------------


def writable(call: Call) -> None:
    """The bucket may be written and exists (run in a worker thread)."""
    bucket = call.bucket
    check_name_or_missing(bucket)
    if bucket == READ_ONLY:
        raise read_only(bucket)
    call.volume.require_bucket(bucket)


def _folder_marker(key: str) -> bool:
    """A key ending in '/' is what S3 consoles put to 'make a folder'; folders here exist by
    the files in them, so such a key is no file."""
    return key.endswith("/")


# -- PutObject ------------------------------------------------------------------------------


def _check_overwrite(call: Call) -> None:
    """``If-None-Match: *`` (write only a new key) and ``If-Match`` (only over that ETag)."""
    if "if-none-match" not in call.headers and "if-match" not in call.headers:
        return
    info = call.volume.info(call.bucket, call.key)
    if info is None and "if-match" in call.headers:
        raise no_such_key(call.bucket, call.key)
    if info is not None and precondition(call.headers, info.etag, info.stat.modified) is not None:
        raise precondition_failed(call.target.resource)


async def put_object(call: Call) -> Reply:
    await call.run(writable, call)
    if _folder_marker(call.key):
        headers = call.headers
        declared = headers.get("x-amz-decoded-content-length", headers.get("content-length"))
        if declared not in (None, "0") or await call.small_body(0):
            raise S3Error(
                "InvalidArgument",
                f"The key {call.key!r} ends in '/': here a folder is not an object and holds no "
                "bytes. Give the object a file name.",
                400,
                call.target.resource,
            )
        return Reply(200, {"etag": EMPTY_ETAG})
    volume = call.volume
    path = volume.object_path(call.bucket, call.key)
    await call.run(_check_overwrite, call)
    payload = call.payload()
    await call.run(volume.store.put_stream, path, payload.reader())
    info = await call.run(
        volume.describe,
        call.bucket,
        call.key,
        payload.etag,
        call.headers.get("content-type") or DEFAULT_TYPE,
        user_metadata(call.headers),
        kept_headers(call.headers),
    )
    return Reply(200, {"etag": info.etag})


# -- GetObject, HeadObject -------------------------------------------------------------------


def _open(volume: Volume, bucket: str, key: str) -> tuple[ObjectInfo, BinaryIO] | None:
    """The object's description and an open file that is the file described (a write that
    lands in between is read again)."""
    for _ in range(3):
        info = volume.info(bucket, key)
        if info is None:
            return None
        try:
            handle = volume.store.open(volume.object_path(bucket, key))
        except FileNotFoundError:
            continue
        st = os.fstat(handle.fileno())
        if (st.st_ino, st.st_size, st.st_mtime_ns) == (
            info.stat.inode,
            info.stat.size,
            info.stat.mtime_ns,
        ):
            return info, handle
        handle.close()
    return None


async def _chunks(
    call: Call, handle: BinaryIO, first: int, length: int
) -> AsyncGenerator[bytes, None]:
    try:
        await call.run(handle.seek, first)
        left = length
        while left > 0:
            block = await call.run(handle.read, min(CHUNK, left))
            if not block:
                return
            left -= len(block)
            yield block
    finally:
        handle.close()


async def get_object(call: Call, head: bool = False) -> Reply:
    bucket, key, volume = call.bucket, call.key, call.volume
    await call.run(volume.require_bucket, bucket)
    if _folder_marker(key):
        raise no_such_key(bucket, key)
    volume.object_path(bucket, key)  # a key that is no file path is a 400, not a 404
    opened = None if head else await call.run(_open, volume, bucket, key)
    info = await call.run(volume.info, bucket, key) if head else opened[0] if opened else None
    if info is None:
        raise no_such_key(bucket, key)
    handle = opened[1] if opened else None
    try:
        reply = _answer(call, info, handle, head)
    except BaseException:
        if handle is not None:
            handle.close()
        raise
    if reply.stream is None and handle is not None:  # 304: nothing to send
        handle.close()
    return reply


def _answer(call: Call, info: ObjectInfo, handle: BinaryIO | None, head: bool) -> Reply:
    headers = object_headers(info)
    status = precondition(call.headers, info.etag, info.stat.modified)
    if status == 304:
        return Reply(304, {k: headers[k] for k in ("etag", "last-modified")})
    if status == 412:
        raise precondition_failed(call.target.resource)
    part = call.query.get("partNumber")
    if part is not None and part != "1":
        raise S3Error(
            "InvalidPartNumber",
            "Naiad keeps an object as one file, so it has one part: ask for partNumber 1.",
            416,
            call.target.resource,
        )
    for name, header in _OVERRIDES.items():
        if name in call.query:
            headers[header] = call.query[name]
    # Objects are served from the console's origin: never let one run as its page.
    headers["content-security-policy"] = "sandbox"
    headers["x-content-type-options"] = "nosniff"
    size = info.stat.size
    try:
        wanted = byte_range(call.headers.get("range"), size)
    except Unsatisfiable:
        raise S3Error(
            "InvalidRange",
            f"The requested range is not satisfiable: the object has {size} bytes.",
            416,
            call.target.resource,
        ) from None
    status, first, length = 200, 0, size
    if wanted is not None:
        status, first, length = 206, wanted[0], wanted[1] - wanted[0] + 1
        headers["content-range"] = f"bytes {wanted[0]}-{wanted[1]}/{size}"
    headers["content-length"] = str(length)
    if head or handle is None:
        return Reply(status, headers)
    return Reply(status, headers, stream=_chunks(call, handle, first, length))


# -- DeleteObject, DeleteObjects ------------------------------------------------------------


async def delete_object(call: Call) -> Reply:
    await call.run(writable, call)
    if not _folder_marker(call.key):
        await call.run(call.volume.remove, call.bucket, call.key)
    return Reply(204)


def _delete_all(volume: Volume, bucket: str, keys: list[str], quiet: bool) -> list[Node]:
    out: list[Node] = []
    for key in keys:
        try:
            if not _folder_marker(key):
                volume.remove(bucket, key)
        except S3Error as exc:
            out.append(("Error", [("Key", key), ("Code", exc.code), ("Message", exc.message)]))
            continue
        if not quiet:
            out.append(("Deleted", [("Key", key)]))
    return out


async def delete_objects(call: Call) -> Reply:
    await call.run(writable, call)
    body = await call.small_body(MAX_BODY)
    try:
        root = parse(body, "Delete")
    except MalformedXML as exc:
        raise S3Error("MalformedXML", str(exc), 400) from None
    keys = [text(item, "Key") or "" for item in children(root, "Object")]
    if not keys or len(keys) > MAX_DELETE:
        raise S3Error(
            "MalformedXML", f"Name from 1 to {MAX_DELETE} objects to delete, not {len(keys)}.", 400
        )
    quiet = (text(root, "Quiet") or "").strip().lower() == "true"
    results = await call.run(_delete_all, call.volume, call.bucket, keys, quiet)
    return xml_reply(document("DeleteResult", results))


# -- CopyObject ---------------------------------------------------------------------------


def copy_source(call: Call) -> tuple[str, str, ObjectInfo]:
    """The (bucket, key, description) ``x-amz-copy-source`` names, its conditions met."""
    raw = call.headers["x-amz-copy-source"]
    quoted, _, version = raw.partition("?")  # before unquoting: a key may hold '?'
    bucket, _, key = unquote(quoted).removeprefix("/").partition("/")
    if not bucket or not key:
        raise S3Error(
            "InvalidArgument",
            f"x-amz-copy-source {raw!r} is not 'bucket/key'.",
            400,
        )
    if version and version not in ("versionId=null", "versionId="):
        raise S3Error(
            "InvalidArgument", "Naiad keeps no object versions: copy the current one.", 400
        )
    check_name_or_missing(bucket)
    if call.volume.bucket_created(bucket) is None:
        raise no_such_bucket(bucket)
    info = None if _folder_marker(key) else call.volume.info(bucket, key)
    if info is None:
        raise no_such_key(bucket, key)
    if precondition(call.headers, info.etag, info.stat.modified, "x-amz-copy-source-"):
        raise precondition_failed(f"/{bucket}/{key}", "the x-amz-copy-source-if-* conditions")
    return bucket, key, info


class _Slice(io.RawIOBase):
    """``length`` bytes of an open file, hashed with MD5 as they are read."""

    def __init__(self, handle: BinaryIO, length: int) -> None:
        self.handle, self.left = handle, length
        self.md5 = hashlib.md5(usedforsecurity=False)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        block = self.handle.read(min(len(buffer), self.left))
        if not block and self.left:
            raise S3Error(
                "InvalidRequest", "The source object shrank while it was being copied; retry.", 409
            )
        self.left -= len(block)
        self.md5.update(block)
        buffer[: len(block)] = block
        return len(block)


def copy_bytes(volume: Volume, source: str, first: int, length: int, dest: str) -> str:
    """Copy ``length`` bytes of ``source`` from ``first`` to ``dest``: the copy's ETag."""
    with volume.store.open(source) as handle:
        handle.seek(first)
        piece = _Slice(handle, length)
        volume.store.put_stream(dest, io.BufferedReader(piece, CHUNK))
    return f'"{piece.md5.hexdigest()}"'


async def copy_object(call: Call) -> Reply:
    await call.run(writable, call)
    if _folder_marker(call.key):
        raise S3Error(
            "InvalidArgument",
            f"The key {call.key!r} ends in '/': a folder here is not an object.",
            400,
            call.target.resource,
        )
    volume = call.volume
    dest = volume.object_path(call.bucket, call.key)
    bucket, key, info = await call.run(copy_source, call)
    replace = call.headers.get("x-amz-metadata-directive", "COPY").upper() == "REPLACE"
    if (bucket, key) == (call.bucket, call.key) and not replace:
        raise S3Error(
            "InvalidRequest",
            "This copy request is illegal because it is trying to copy an object to itself "
            "without changing the object's metadata; set MetadataDirective='REPLACE'.",
            400,
            call.target.resource,
        )
    if replace:
        kept = (
            call.headers.get("content-type") or DEFAULT_TYPE,
            user_metadata(call.headers),
            kept_headers(call.headers),
        )
    else:
        kept = (info.content_type, info.metadata, info.headers)
    source = volume.object_path(bucket, key)

    def copy() -> bytes:
        etag = copy_bytes(volume, source, 0, info.stat.size, dest)
        copied = volume.describe(call.bucket, call.key, etag, *kept)
        return element(
            ("CopyObjectResult", [("LastModified", copied.stat.modified), ("ETag", etag)])
        )

    return slow_xml(call, copy)
