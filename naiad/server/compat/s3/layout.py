"""Where S3's buckets, objects and records are in a local artifact store.

A bucket ``B`` is the folder ``buckets/B/`` (``store.artifacts.buckets``), an object its file, so
jobs read what S3 writes and S3 reads what jobs write. What S3 knows beyond the bytes sits
in ``buckets/.naiad-s3/``, a name no bucket can have, so a job's channel never sees it:
a record per bucket made with CreateBucket (a bucket with no objects still exists), a
sidecar per object put through S3 (ETag, Content-Type, user metadata), and the parts of
multipart uploads in progress. The bucket ``naiad`` is the whole store, read-only.

Files are written, read and deleted through the store (atomic writes, path rules); their
times and the folders' entries are read off the store's local root, as the store's own
interface carries neither.
"""

import hashlib
import mimetypes
import os
import stat as stat_
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson

from naiad.core.errors import Conflict, InvalidInput
from naiad.server.compat.s3.errors import S3Error, invalid_argument, no_such_bucket
from naiad.server.compat.s3.walk import Scan
from naiad.store.artifacts.base import MAX_PATH_BYTES, TMP_PREFIX, safe_path
from naiad.store.artifacts.buckets import BUCKETS, STORE_BUCKET, name_problem
from naiad.store.artifacts.local import LocalArtifactStore

META = f"{BUCKETS}/.naiad-s3"  # not a bucket name: never a bucket, never in a channel
READ_ONLY = STORE_BUCKET  # the bucket that shows the store itself
DEFAULT_TYPE = "binary/octet-stream"  # S3's type of an object put without one


def check_name(bucket: str) -> None:
    problem = name_problem(bucket)
    if problem is not None:
        raise S3Error(
            "InvalidBucketName",
            f"The bucket name {bucket!r} is not valid: a bucket name {problem}.",
            400,
            f"/{bucket}",
        )


def read_only(bucket: str) -> S3Error:
    return S3Error(
        "AccessDenied",
        f"The bucket {READ_ONLY!r} shows Naiad's own artifact store (runs/, models/, "
        "jobs/...) and is read-only; write to a bucket of your own (create_bucket).",
        403,
        f"/{bucket}",
    )


@dataclass(frozen=True)
class Stat:
    """A file's identity: a sidecar holds for the file it was written for, not a newer one."""

    size: int
    mtime_ns: int
    inode: int

    @property
    def modified(self) -> datetime:
        return datetime.fromtimestamp(self.mtime_ns / 1e9, UTC)

    def matches(self, record: dict[str, object]) -> bool:
        return (record.get("size"), record.get("mtime_ns"), record.get("inode")) == (
            self.size,
            self.mtime_ns,
            self.inode,
        )

    def default_etag(self) -> str:
        """An ETag for a file no S3 write described: it changes when the file does. It is
        not an MD5 (it has a '-', as multipart ETags do), so no client checks it as one."""
        seed = f"{self.size}:{self.mtime_ns}:{self.inode}".encode()
        return f'"{hashlib.md5(seed, usedforsecurity=False).hexdigest()}-1"'


@dataclass
class ObjectInfo:
    """What S3 answers about an object."""

    key: str
    stat: Stat
    etag: str
    content_type: str
    metadata: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)  # Cache-Control and its kin


class Volume:
    """S3's view of a local artifact store."""

    def __init__(self, store: LocalArtifactStore) -> None:
        self.store, self.root = store, store.root

    # -- names --------------------------------------------------------------------------

    @staticmethod
    def folder(bucket: str) -> str:
        """The store folder holding the bucket's objects ("" for the read-only bucket)."""
        return "" if bucket == READ_ONLY else f"{BUCKETS}/{bucket}"

    @staticmethod
    def record_path(bucket: str) -> str:
        return f"{META}/buckets/{bucket}.json"

    @staticmethod
    def sidecar_path(bucket: str, key: str) -> str:
        return f"{META}/objects/{bucket}/{key}"

    @staticmethod
    def uploads_path(bucket: str) -> str:
        return f"{META}/uploads/{bucket}"

    @staticmethod
    def max_key_bytes(bucket: str) -> int:
        """The longest key (in UTF-8) whose object and sidecar both fit the store's paths."""
        if bucket == READ_ONLY:
            return MAX_PATH_BYTES
        return MAX_PATH_BYTES - len(Volume.sidecar_path(bucket, "").encode())

    def object_path(self, bucket: str, key: str) -> str:
        """The store path of an object; 400 for a key that cannot be a file's path."""
        resource = f"/{bucket}/{key}"
        limit = self.max_key_bytes(bucket)
        if len(key.encode("utf-8", "surrogatepass")) > limit:
            raise S3Error(
                "KeyTooLong",
                f"The key is longer than {limit} bytes, the most a key of bucket {bucket!r} "
                "may have here; shorten it.",
                400,
                resource,
            )
        if "." in key.split("/"):
            raise invalid_argument(
                f"The key {key!r} has a '.' segment; a key is a file path here, so name the "
                "file without '/./'.",
                resource,
            )
        folder = self.folder(bucket)
        wanted = f"{folder}/{key}" if folder else key
        try:
            path = safe_path(wanted)
        except InvalidInput as exc:
            code = "KeyTooLong" if "longer than" in exc.message else "InvalidArgument"
            raise S3Error(code, exc.message, 400, resource) from None
        if path != wanted:
            raise invalid_argument(
                f"The key {key!r} is not a plain file path ('/'-separated names).", resource
            )
        if bucket == READ_ONLY and (path == META or path.startswith(META + "/")):
            raise S3Error("NoSuchKey", f"The bucket {bucket!r} holds no object {key!r}.", 404)
        return path

    # -- files --------------------------------------------------------------------------

    def full(self, path: str) -> Path:
        return self.root / path if path else self.root

    def stat(self, path: str) -> Stat | None:
        """The file at ``path``; None when there is none (or a folder is there)."""
        try:
            st = os.stat(self.full(path), follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat_.S_ISREG(st.st_mode):
            return None
        return Stat(st.st_size, st.st_mtime_ns, st.st_ino)

    def read_json(self, path: str) -> dict[str, object] | None:
        try:
            value = orjson.loads(self.store.get_bytes(path))
        except (FileNotFoundError, orjson.JSONDecodeError, InvalidInput):
            return None
        return value if isinstance(value, dict) else None

    def write_json(self, path: str, value: Mapping[str, object]) -> None:
        self.store.put_bytes(path, orjson.dumps(value))

    def entries(self, path: str) -> list[tuple[str, bool]]:
        """The folder's visible entries, (name, is_folder): no upload in flight, no link,
        no name that is not UTF-8 (no S3 key could name it)."""
        hide = ".naiad-s3" if path == BUCKETS else None
        out: list[tuple[str, bool]] = []
        try:
            with os.scandir(self.full(path)) as found:
                for entry in found:
                    name = entry.name
                    if name.startswith(TMP_PREFIX) or name == hide or entry.is_symlink():
                        continue
                    try:
                        name.encode("utf-8")
                    except UnicodeEncodeError:
                        continue
                    if entry.is_dir():
                        out.append((name, True))
                    elif entry.is_file():
                        out.append((name, False))
        except (FileNotFoundError, NotADirectoryError):
            return []
        return out

    def scanner(self, bucket: str) -> Scan:
        """The walker's view of a bucket: ``scan("a/b/")`` lists its folder ``a/b``."""
        base = self.folder(bucket)

        def scan(folder: str) -> list[tuple[str, bool]]:
            return self.entries(f"{base}/{folder}".strip("/") if base else folder.rstrip("/"))

        return scan

    # -- buckets ------------------------------------------------------------------------

    def bucket_created(self, bucket: str) -> datetime | None:
        """When the bucket was made; None when it does not exist. A folder under buckets/
        that a job wrote (no CreateBucket) is a bucket too, dated by the folder."""
        if bucket == READ_ONLY:
            return self._folder_time("")
        record = self.read_json(self.record_path(bucket))
        if record is not None and isinstance(record.get("created"), str):
            return datetime.fromisoformat(str(record["created"]))
        return self._folder_time(self.folder(bucket))

    def _folder_time(self, path: str) -> datetime | None:
        try:
            st = os.stat(self.full(path))
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not os.path.isdir(self.full(path)):
            return None
        return datetime.fromtimestamp(st.st_mtime, UTC)

    def require_bucket(self, bucket: str) -> None:
        check_name_or_missing(bucket)
        if self.bucket_created(bucket) is None:
            raise no_such_bucket(bucket)

    def bucket_names(self) -> list[str]:
        names = {name for name, is_folder in self.entries(BUCKETS) if is_folder}
        for name, is_folder in self.entries(f"{META}/buckets"):
            if not is_folder and name.endswith(".json"):
                names.add(name.removesuffix(".json"))
        return sorted(n for n in names if name_problem(n) is None and n != READ_ONLY)

    # -- objects ------------------------------------------------------------------------

    def info(self, bucket: str, key: str) -> ObjectInfo | None:
        """What S3 says of an object; None when there is no such file."""
        stat = self.stat(self.object_path(bucket, key))
        if stat is None:
            return None
        record = None if bucket == READ_ONLY else self.read_json(self.sidecar_path(bucket, key))
        if record is None or not stat.matches(record):
            guessed = mimetypes.guess_type(key)[0] or DEFAULT_TYPE
            return ObjectInfo(key, stat, stat.default_etag(), guessed)
        return ObjectInfo(
            key,
            stat,
            str(record.get("etag")),
            str(record.get("content_type") or DEFAULT_TYPE),
            strings(record.get("metadata")),
            strings(record.get("headers")),
        )

    def describe(
        self,
        bucket: str,
        key: str,
        etag: str,
        content_type: str,
        metadata: dict[str, str],
        headers: dict[str, str],
    ) -> ObjectInfo:
        """Record an object just written: its sidecar names the file's identity now."""
        stat = self.stat(self.object_path(bucket, key))
        if stat is None:  # deleted meanwhile; the delete removes the sidecar too
            raise S3Error(
                "NoSuchKey", f"The object {key!r} was deleted while it was being written.", 404
            )
        record = {
            "etag": etag,
            "content_type": content_type,
            "metadata": metadata,
            "headers": headers,
            "size": stat.size,
            "mtime_ns": stat.mtime_ns,
            "inode": stat.inode,
        }
        sidecar = self.sidecar_path(bucket, key)
        try:
            self.write_json(sidecar, record)
        except Conflict:  # a stale sidecar of a key that is now a folder, or the other way
            self._clear_stale(sidecar)
            self.write_json(sidecar, record)
        return ObjectInfo(key, stat, etag, content_type, metadata, headers)

    def _clear_stale(self, sidecar: str) -> None:
        """Remove sidecars in the way of ``sidecar``: files where its folders go (their
        objects became folders), or a folder where it goes (its objects are gone: the
        object is a file now)."""
        parts = sidecar.split("/")
        for end in range(len(META.split("/")) + 2, len(parts)):
            parent = "/".join(parts[:end])
            if self.stat(parent) is not None:
                self.store.delete(parent)
                return
        if self.full(sidecar).is_dir():
            self.store.delete(sidecar)

    def remove(self, bucket: str, key: str) -> None:
        """Delete an object and its sidecar; a missing one, or a folder, is left alone."""
        path = self.object_path(bucket, key)
        if self.stat(path) is not None:
            self.store.delete(path)
        sidecar = self.sidecar_path(bucket, key)
        if self.stat(sidecar) is not None:
            self.store.delete(sidecar)


def check_name_or_missing(bucket: str) -> None:
    """A name no bucket can have is reported as S3 does, before looking for it."""
    if bucket != READ_ONLY:
        check_name(bucket)


def strings(value: object) -> dict[str, str]:
    """A JSON object of strings as read back (anything else: empty)."""
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items()}
