"""Multipart uploads: CreateMultipartUpload, UploadPart, UploadPartCopy, ListParts,
CompleteMultipartUpload, AbortMultipartUpload, ListMultipartUploads.

An upload is a folder under ``buckets/.naiad-s3/uploads/BUCKET/ID/``: ``upload.json`` (the
key and what the object will say of itself), each part a file named by its number beside
its ETag. Completing streams the parts, in order, into the object (a space now and then
keeps the client waiting, as S3 does) and removes the folder; aborting removes it.
"""

import hashlib
import io
import itertools
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from naiad.server.compat.s3.buckets import owner
from naiad.server.compat.s3.call import CHUNK, Call, Reply, slow_xml, xml_reply
from naiad.server.compat.s3.errors import S3Error, invalid_argument, no_such_upload
from naiad.server.compat.s3.layout import DEFAULT_TYPE, Stat, Volume, strings
from naiad.server.compat.s3.objects import (
    copy_bytes,
    copy_source,
    kept_headers,
    user_metadata,
    writable,
)
from naiad.server.compat.s3.ranges import copy_range
from naiad.server.compat.s3.xml import MAX_BODY, MalformedXML, Node, children, document, element
from naiad.server.compat.s3.xml import parse as parse_xml
from naiad.server.compat.s3.xml import text as xml_text

MIN_PART = 5 * 1024 * 1024  # every part but the last, as S3 requires
MAX_PARTS = 10_000
_UPLOAD_ID = re.compile(r"[0-9a-f]{32}")
_MD5 = re.compile(r"[0-9a-f]{32}")


def multipart_etag(part_etags: list[str]) -> str:
    """S3's ETag of a multipart object: the MD5 of its parts' MD5s, then '-' and how many."""
    digest = hashlib.md5(usedforsecurity=False)
    for etag in part_etags:
        bare = etag.strip('"')
        digest.update(bytes.fromhex(bare) if _MD5.fullmatch(bare) else bare.encode())
    return f'"{digest.hexdigest()}-{len(part_etags)}"'


# -- where an upload lives ---------------------------------------------------------------


def _folder(volume: Volume, bucket: str, upload_id: str) -> str:
    return f"{volume.uploads_path(bucket)}/{upload_id}"


def _upload(call: Call) -> dict[str, object]:
    """The upload the query names, of this key; NoSuchUpload otherwise."""
    upload_id = call.query.get("uploadId", "")
    missing = no_such_upload(call.bucket, call.key, upload_id)
    if not _UPLOAD_ID.fullmatch(upload_id):
        raise missing
    record = call.volume.read_json(f"{_folder(call.volume, call.bucket, upload_id)}/upload.json")
    if record is None or record.get("key") != call.key:
        raise missing
    return record


def _part_number(call: Call) -> int:
    return call.int_query("partNumber", 0, 1, MAX_PARTS)


def _md5_of(volume: Volume, path: str) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with volume.store.open(path) as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return f'"{digest.hexdigest()}"'


def _part(volume: Volume, folder: str, number: int) -> tuple[Stat, str] | None:
    """A part's file and ETag (read again from the bytes if its record is stale)."""
    stat = volume.stat(f"{folder}/{number}")
    if stat is None:
        return None
    record = volume.read_json(f"{folder}/{number}.json")
    if record is not None and stat.matches(record) and isinstance(record.get("etag"), str):
        return stat, str(record["etag"])
    return stat, _md5_of(volume, f"{folder}/{number}")


def _record_part(volume: Volume, folder: str, number: int, etag: str) -> Stat:
    stat = volume.stat(f"{folder}/{number}")
    if stat is None:
        raise S3Error("NoSuchUpload", "The upload was aborted while the part was written.", 404)
    record = {"etag": etag, "size": stat.size, "mtime_ns": stat.mtime_ns, "inode": stat.inode}
    volume.write_json(f"{folder}/{number}.json", record)
    return stat


# -- the operations ----------------------------------------------------------------------


async def create_multipart_upload(call: Call) -> Reply:
    await call.run(writable, call)
    if call.key.endswith("/"):
        raise invalid_argument(
            f"The key {call.key!r} ends in '/': a folder here is not an object.",
            call.target.resource,
        )
    call.volume.object_path(call.bucket, call.key)
    upload_id = uuid.uuid4().hex
    record = {
        "key": call.key,
        "created": datetime.now(UTC).isoformat(),
        "content_type": call.headers.get("content-type") or DEFAULT_TYPE,
        "metadata": user_metadata(call.headers),
        "headers": kept_headers(call.headers),
    }
    path = f"{_folder(call.volume, call.bucket, upload_id)}/upload.json"
    await call.run(call.volume.write_json, path, record)
    fields: list[Node] = [("Bucket", call.bucket), ("Key", call.key), ("UploadId", upload_id)]
    return xml_reply(document("InitiateMultipartUploadResult", fields))


async def upload_part(call: Call) -> Reply:
    await call.run(writable, call)
    await call.run(_upload, call)
    number = _part_number(call)
    folder = _folder(call.volume, call.bucket, call.query["uploadId"])
    payload = call.payload()
    await call.run(call.volume.store.put_stream, f"{folder}/{number}", payload.reader())
    await call.run(_record_part, call.volume, folder, number, payload.etag)
    return Reply(200, {"etag": payload.etag})


async def upload_part_copy(call: Call) -> Reply:
    await call.run(writable, call)
    await call.run(_upload, call)
    number = _part_number(call)
    volume = call.volume
    folder = _folder(volume, call.bucket, call.query["uploadId"])
    bucket, key, info = await call.run(copy_source, call)
    wanted = call.headers.get("x-amz-copy-source-range")
    first, last = copy_range(wanted, info.stat.size) if wanted else (0, info.stat.size - 1)
    source = volume.object_path(bucket, key)

    def copy() -> bytes:
        etag = copy_bytes(volume, source, first, last - first + 1, f"{folder}/{number}")
        stat = _record_part(volume, folder, number, etag)
        return element(("CopyPartResult", [("LastModified", stat.modified), ("ETag", etag)]))

    return slow_xml(call, copy)


def _requested(body: bytes) -> list[tuple[int, str]]:
    try:
        root = parse_xml(body, "CompleteMultipartUpload")
    except MalformedXML as exc:
        raise S3Error("MalformedXML", str(exc), 400) from None
    parts = []
    for part in children(root, "Part"):
        number, etag = xml_text(part, "PartNumber"), xml_text(part, "ETag")
        if number is None or not number.strip().isdigit() or etag is None:
            raise S3Error("MalformedXML", "Each <Part> needs a <PartNumber> and an <ETag>.", 400)
        parts.append((int(number), etag.strip().strip('"')))
    if not parts:
        raise S3Error("MalformedXML", "Name at least one part to complete the upload.", 400)
    return parts


def _check_parts(volume: Volume, folder: str, wanted: list[tuple[int, str]]) -> list[Stat]:
    numbers = [number for number, _ in wanted]
    if any(later <= earlier for earlier, later in itertools.pairwise(numbers)):
        raise S3Error("InvalidPartOrder", "List the parts in ascending order of part number.", 400)
    stats: list[Stat] = []
    for index, (number, etag) in enumerate(wanted):
        found = _part(volume, folder, number)
        if found is None or found[1].strip('"') != etag:
            raise S3Error(
                "InvalidPart",
                f"Part {number} was not uploaded, or its ETag is not {etag!r}: upload it "
                "again, or list the parts (list_parts).",
                400,
            )
        if found[0].size < MIN_PART and index < len(wanted) - 1:
            raise S3Error(
                "EntityTooSmall",
                f"Part {number} is {found[0].size} bytes; every part but the last must be at "
                f"least {MIN_PART} bytes (5 MiB).",
                400,
            )
        stats.append(found[0])
    return stats


class _Parts(io.RawIOBase):
    """The parts' files one after the other, as one stream."""

    def __init__(self, volume: Volume, paths: list[str]) -> None:
        self.volume, self.paths = volume, list(reversed(paths))
        self.handle: Any = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while True:
            if self.handle is None:
                if not self.paths:
                    return 0
                self.handle = self.volume.store.open(self.paths.pop())
            read = int(self.handle.readinto(buffer))
            if read:
                return read
            self.handle.close()
            self.handle = None

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
        super().close()


async def complete_multipart_upload(call: Call) -> Reply:
    await call.run(writable, call)
    record = await call.run(_upload, call)
    wanted = _requested(await call.small_body(MAX_BODY))
    volume = call.volume
    folder = _folder(volume, call.bucket, call.query["uploadId"])
    await call.run(_check_parts, volume, folder, wanted)
    etag = multipart_etag([etag for _, etag in wanted])
    path = volume.object_path(call.bucket, call.key)

    def complete() -> bytes:
        with _Parts(volume, [f"{folder}/{number}" for number, _ in wanted]) as parts:
            volume.store.put_stream(path, io.BufferedReader(parts, CHUNK))
        volume.describe(
            call.bucket,
            call.key,
            etag,
            str(record.get("content_type") or DEFAULT_TYPE),
            strings(record.get("metadata")),
            strings(record.get("headers")),
        )
        volume.store.delete(folder)
        fields: list[Node] = [
            ("Location", f"/{call.bucket}/{call.key}"),
            ("Bucket", call.bucket),
            ("Key", call.key),
            ("ETag", etag),
        ]
        return element(("CompleteMultipartUploadResult", fields))

    return slow_xml(call, complete)


async def abort_multipart_upload(call: Call) -> Reply:
    await call.run(writable, call)
    await call.run(_upload, call)
    await call.run(
        call.volume.store.delete, _folder(call.volume, call.bucket, call.query["uploadId"])
    )
    return Reply(204)


async def list_parts(call: Call) -> Reply:
    await call.run(call.volume.require_bucket, call.bucket)
    await call.run(_upload, call)
    upload_id = call.query["uploadId"]
    folder = _folder(call.volume, call.bucket, upload_id)
    limit = min(call.int_query("max-parts", 1000, 0, 2**31 - 1), 1000)
    after = call.int_query("part-number-marker", 0, 0, MAX_PARTS)

    def read() -> list[tuple[int, Stat, str]]:
        names = call.volume.entries(folder)
        numbers = sorted(int(n) for n, is_dir in names if not is_dir and n.isdigit())
        found = []
        for number in (n for n in numbers if n > after):
            part = _part(call.volume, folder, number)
            if part is not None:
                found.append((number, *part))
            if len(found) > limit:
                break
        return found

    found = await call.run(read)
    truncated = len(found) > limit
    found = found[:limit]
    fields: list[Node] = [
        ("Bucket", call.bucket),
        ("Key", call.key),
        ("UploadId", upload_id),
        ("PartNumberMarker", after),
        ("MaxParts", limit),
        ("IsTruncated", truncated),
    ]
    if truncated and found:  # MaxParts=0 names no next part
        fields.append(("NextPartNumberMarker", found[-1][0]))
    fields += [("Initiator", owner(call)[1]), owner(call), ("StorageClass", "STANDARD")]
    fields += [
        (
            "Part",
            [
                ("PartNumber", number),
                ("LastModified", stat.modified),
                ("ETag", etag),
                ("Size", stat.size),
            ],
        )
        for number, stat, etag in found
    ]
    return xml_reply(document("ListPartsResult", fields))


async def list_multipart_uploads(call: Call) -> Reply:
    await call.run(call.volume.require_bucket, call.bucket)
    volume, query = call.volume, call.query
    prefix = query.get("prefix", "")
    limit = min(call.int_query("max-uploads", 1000, 0, 2**31 - 1), 1000)
    key_marker, id_marker = query.get("key-marker", ""), query.get("upload-id-marker", "")

    def after(key: str, upload_id: str) -> bool:
        if id_marker:
            return (key, upload_id) > (key_marker, id_marker)
        return key > key_marker

    def read() -> list[tuple[str, str, str]]:
        base = volume.uploads_path(call.bucket)
        found = []
        for upload_id, is_dir in volume.entries(base):
            record = volume.read_json(f"{base}/{upload_id}/upload.json") if is_dir else None
            key = str(record.get("key", "")) if record else ""
            if record is not None and key.startswith(prefix) and after(key, upload_id):
                found.append((key, upload_id, str(record.get("created", ""))))
        return sorted(found)

    found = await call.run(read)
    truncated = len(found) > limit
    found = found[:limit]
    fields: list[Node] = [
        ("Bucket", call.bucket),
        ("KeyMarker", key_marker),
        ("UploadIdMarker", id_marker),
        ("Prefix", prefix),
        ("MaxUploads", limit),
        ("IsTruncated", truncated),
    ]
    if truncated and found:
        fields += [("NextKeyMarker", found[-1][0]), ("NextUploadIdMarker", found[-1][1])]
    fields += [
        (
            "Upload",
            [
                ("Key", key),
                ("UploadId", upload_id),
                ("Initiated", datetime.fromisoformat(created) if created else None),
                ("StorageClass", "STANDARD"),
                owner(call),
                ("Initiator", owner(call)[1]),
            ],
        )
        for key, upload_id, created in found
    ]
    return xml_reply(document("ListMultipartUploadsResult", fields))
