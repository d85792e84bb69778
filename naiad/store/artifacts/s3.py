"""Artifacts as objects under `s3://bucket/prefix` on AWS or any S3-compatible server.

An object appears only when its single PUT or its multipart upload completes, so
readers never see a part; s3transfer aborts a failed multipart upload, so nothing is
left behind. boto3 is imported here, on first use, not when Naiad is imported.
"""

from __future__ import annotations

import builtins
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO, cast

from naiad.core.errors import InvalidInput, NotFound, Unavailable
from naiad.store.artifacts.base import CHUNK_SIZE, ArtifactInfo, safe_path

if TYPE_CHECKING:
    from boto3.s3.transfer import TransferConfig

MULTIPART_THRESHOLD = 8 * 1024 * 1024
MISSING_CODES = {"404", "NoSuchKey", "NotFound"}
# The store is there but cannot answer now: what botocore still meets after its retries.
BUSY_CODES = {"500", "502", "503", "504", "InternalError", "ServiceUnavailable", "SlowDown"}
RETRIES = 4  # attempts per call, with botocore's exponential back-off and jitter between


def _unreachable() -> tuple[type[Exception], ...]:
    """botocore's errors for a store that did not answer: refused, dropped, timed out."""
    from botocore.exceptions import ConnectionError, HTTPClientError

    return (ConnectionError, HTTPClientError)


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """(bucket, prefix) of `s3://bucket[/prefix]`; the prefix obeys the path rules."""
    rest = uri.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if not uri.startswith("s3://") or not bucket:
        raise InvalidInput(
            f"Artifact URI {uri!r} names no bucket; use 's3://bucket' or 's3://bucket/prefix'."
        )
    return bucket, safe_path(prefix, allow_root=True)


class _CountingReader:
    """Wraps a stream to count bytes; exposes only read() so s3transfer streams it."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.count += len(data)
        return data


class S3ArtifactStore:
    """An ArtifactStore over one bucket and key prefix."""

    def __init__(
        self, uri: str, *, endpoint_url: str | None = None, client: Any | None = None
    ) -> None:
        self.bucket, self.prefix = parse_s3_uri(uri)
        self.uri = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        self.endpoint_url = endpoint_url
        self._client = client if client is not None else _make_client(endpoint_url)
        self._transfer = _transfer_config()

    def __repr__(self) -> str:
        return f"S3ArtifactStore({self.uri!r}, endpoint_url={self.endpoint_url!r})"

    # -- keys -------------------------------------------------------------------------

    def _key(self, rel: str) -> str:
        return f"{self.prefix}/{rel}" if self.prefix and rel else self.prefix or rel

    def _dir_key(self, rel: str) -> str:
        """The key prefix of everything below `rel` ('' for the whole bucket)."""
        key = self._key(rel)
        return f"{key}/" if key else ""

    def _rel(self, key: str) -> str:
        return key[len(self.prefix) + 1 :] if self.prefix else key

    # -- errors -----------------------------------------------------------------------

    def _translate(self, exc: Exception, rel: str) -> Exception:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
        if code == "NoSuchBucket":
            return NotFound(
                f"Bucket {self.bucket!r} does not exist at "
                f"{self.endpoint_url or 'the default S3 endpoint'}; create it or fix the "
                "artifact URI."
            )
        if code in MISSING_CODES:
            return FileNotFoundError(f"Artifact {rel!r} not found in {self.uri}.")
        if code in BUSY_CODES:
            return self.unavailable(exc)
        return exc

    def _call(self, rel: str, method: str, **kwargs: Any) -> Any:
        from botocore.exceptions import ClientError

        try:
            return getattr(self._client, method)(**kwargs)
        except ClientError as exc:
            raise self._translate(exc, rel) from exc
        except Exception as exc:
            if isinstance(exc, _unreachable()):
                raise self.unavailable(exc) from exc
            raise

    def unavailable(self, exc: Exception) -> Unavailable:
        """The store did not answer, after botocore's retries with back-off."""
        where = self.endpoint_url or "S3"
        return Unavailable(
            f"The artifact store ({self.uri} at {where}) cannot be reached right now "
            f"({exc.__class__.__name__}, after {RETRIES} tries); nothing was stored there. "
            "Retry in a moment."
        )

    # -- writes -----------------------------------------------------------------------

    def put_file(self, path: str, local_path: str | os.PathLike[str]) -> int:
        rel = safe_path(path)
        size = os.path.getsize(local_path)
        self._call(
            rel,
            "upload_file",
            Filename=os.fspath(local_path),
            Bucket=self.bucket,
            Key=self._key(rel),
            Config=self._transfer,
        )
        return size

    def put_stream(self, path: str, stream: IO[bytes]) -> int:
        rel = safe_path(path)
        reader = _CountingReader(stream)
        self._call(
            rel,
            "upload_fileobj",
            Fileobj=reader,
            Bucket=self.bucket,
            Key=self._key(rel),
            Config=self._transfer,
        )
        return reader.count

    def put_bytes(self, path: str, data: bytes) -> int:
        rel = safe_path(path)
        self._call(
            rel,
            "put_object",
            Bucket=self.bucket,
            Key=self._key(rel),
            Body=data if isinstance(data, bytes) else bytes(data),
        )
        return len(data)

    # -- reads ------------------------------------------------------------------------

    def open(self, path: str) -> BinaryIO:
        rel = safe_path(path)
        response = self._call(rel, "get_object", Bucket=self.bucket, Key=self._key(rel))
        return cast(BinaryIO, response["Body"])

    def get_bytes(self, path: str) -> bytes:
        with self.open(path) as body:
            return body.read()

    def _head(self, rel: str) -> dict[str, Any] | None:
        try:
            return self._call(rel, "head_object", Bucket=self.bucket, Key=self._key(rel))
        except FileNotFoundError:
            return None

    def size(self, path: str) -> int:
        rel = safe_path(path)
        head = self._head(rel)
        if head is None:
            raise FileNotFoundError(f"Artifact {rel!r} not found in {self.uri}.")
        return int(head["ContentLength"])

    def exists(self, path: str) -> bool:
        rel = safe_path(path)
        if self._head(rel) is not None:
            return True
        page = self._call(
            rel, "list_objects_v2", Bucket=self.bucket, Prefix=self._dir_key(rel), MaxKeys=1
        )
        return page.get("KeyCount", 0) > 0

    def _pages(self, rel: str, delimiter: str | None) -> Iterator[dict[str, Any]]:
        from botocore.exceptions import ClientError

        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self._dir_key(rel)}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        try:
            yield from self._client.get_paginator("list_objects_v2").paginate(**kwargs)
        except ClientError as exc:
            raise self._translate(exc, rel) from exc
        except Exception as exc:
            if isinstance(exc, _unreachable()):
                raise self.unavailable(exc) from exc
            raise

    def _keys(self, rel: str) -> Iterator[str]:
        for page in self._pages(rel, None):
            for obj in page.get("Contents", []):
                yield obj["Key"]

    def list(self, prefix: str = "", recursive: bool = False) -> list[ArtifactInfo]:
        rel = safe_path(prefix, allow_root=True)
        found: dict[str, ArtifactInfo] = {}
        for page in self._pages(rel, None if recursive else "/"):
            for common in page.get("CommonPrefixes", []):
                path = self._rel(common["Prefix"]).rstrip("/")
                if path:
                    found[path] = ArtifactInfo(path, True, None)
            for obj in page.get("Contents", []):
                path = self._rel(obj["Key"])
                if path and not path.endswith("/"):  # skip console "folder" markers
                    found.setdefault(path, ArtifactInfo(path, False, int(obj["Size"])))
        return [found[p] for p in sorted(found)]

    def download(self, path: str, local_path: str | os.PathLike[str]) -> None:
        rel = safe_path(path, allow_root=True)
        dest = Path(local_path)
        if rel and self._head(rel) is not None:
            self._download_one(rel, dest)
            return
        files = self.list(rel, recursive=True)
        if not files:
            raise FileNotFoundError(f"Artifact {rel!r} not found in {self.uri}.")
        for info in files:
            self._download_one(info.path, dest / os.path.relpath(info.path, rel or "."))

    def _download_one(self, rel: str, dest: Path) -> None:
        """s3transfer writes to a temp name and renames, so `dest` is never partial."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        self._call(
            rel,
            "download_file",
            Bucket=self.bucket,
            Key=self._key(rel),
            Filename=str(dest),
            Config=self._transfer,
        )

    # -- delete -----------------------------------------------------------------------

    def delete(self, path: str) -> None:
        rel = safe_path(path, allow_root=True)
        if rel:
            self._call(rel, "delete_object", Bucket=self.bucket, Key=self._key(rel))
        batch: list[dict[str, str]] = []
        for key in self._keys(rel):
            batch.append({"Key": key})
            if len(batch) == 1000:  # the most one DeleteObjects call accepts
                self._delete_batch(rel, batch)
                batch = []
        if batch:
            self._delete_batch(rel, batch)

    def _delete_batch(self, rel: str, batch: builtins.list[dict[str, str]]) -> None:
        response = self._call(
            rel,
            "delete_objects",
            Bucket=self.bucket,
            Delete={"Objects": batch, "Quiet": True},
        )
        errors = response.get("Errors") or []
        if errors:
            first = errors[0]
            raise OSError(
                f"Could not delete {len(errors)} object(s) under {rel!r} in {self.uri}; "
                f"first: {first.get('Key')!r}: {first.get('Message') or first.get('Code')}."
            )

    def uri_for(self, path: str) -> str:
        rel = safe_path(path, allow_root=True)
        return f"s3://{self.bucket}/{self._key(rel)}" if rel else self.uri


def _make_client(endpoint_url: str | None) -> Any:
    """A boto3 S3 client; path-style addressing and optional checksums for custom servers."""
    import boto3
    from botocore.config import Config

    retries = Config(retries={"mode": "standard", "max_attempts": RETRIES})  # with back-off
    if endpoint_url is None:
        return boto3.client("s3", config=retries)
    config = Config(
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    ).merge(retries)
    return boto3.client("s3", endpoint_url=endpoint_url, config=config)


def _transfer_config() -> TransferConfig:
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(
        multipart_threshold=MULTIPART_THRESHOLD,
        multipart_chunksize=MULTIPART_THRESHOLD,
        io_chunksize=CHUNK_SIZE,
    )
