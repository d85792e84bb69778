"""One artifact-store suite, run on every backend: file://, s3://bucket/prefix, s3://bucket.

The s3 side talks HTTP to moto's standalone server, like any S3-compatible endpoint.
"""

import io
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from naiad.core.errors import InvalidInput, NotFound
from naiad.store.artifacts import ArtifactInfo, ArtifactStore, open_artifact_store
from naiad.testing.s3 import S3Server, s3_server  # noqa: F401

MIB = 1024 * 1024
BIG = 20 * MIB  # above the S3 multipart threshold, so multipart uploads are exercised


@dataclass
class Backend:
    """A store plus a way to see everything its backend holds, inside the root or not."""

    store: ArtifactStore
    everything: Callable[[], set[str]]


@pytest.fixture(
    params=[
        "file",
        pytest.param("s3", marks=pytest.mark.s3),
        pytest.param("s3-bucket", marks=pytest.mark.s3),
    ]
)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "file":
        root = tmp_path / "root"
        store = open_artifact_store(root.as_uri())

        def everything() -> set[str]:
            return {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()}

        yield Backend(store, everything)
        return
    server: S3Server = request.getfixturevalue("s3_server")
    # a prefix inside a shared bucket, or the whole of a bucket of its own
    uri = server.fresh_uri() if request.param == "s3" else f"s3://{server.create_bucket()}"
    store = open_artifact_store(uri, s3_endpoint_url=server.endpoint_url)
    client = server.client()

    def everything() -> set[str]:
        keys: set[str] = set()
        for bucket in client.list_buckets()["Buckets"]:
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket["Name"]):
                keys.update(f"{bucket['Name']}/{o['Key']}" for o in page.get("Contents", []))
        return keys

    yield Backend(store, everything)
    store.delete("")


@pytest.fixture
def store(backend: Backend) -> ArtifactStore:
    return backend.store


class PatternStream(io.RawIOBase):
    """`size` deterministic bytes, produced on demand; records the largest read."""

    def __init__(self, size: int, fill: bytes = b"", fail_at: int | None = None) -> None:
        self.size, self.pos, self.fail_at, self.fill = size, 0, fail_at, fill
        self.largest_read = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self.fail_at is not None and self.pos >= self.fail_at:
            raise ConnectionResetError("client went away mid-upload")
        n = self.size - self.pos if n is None or n < 0 else min(n, self.size - self.pos)
        self.largest_read = max(self.largest_read, n)
        data = pattern(self.pos, n, self.fill)
        self.pos += n
        return data


def pattern(start: int, n: int, fill: bytes = b"") -> bytes:
    if fill:
        return fill * n
    block = bytes(range(256))
    offset = start % 256
    return (block * ((n + offset) // 256 + 2))[offset : offset + n]


def make_tree(store: ArtifactStore) -> None:
    store.put_bytes("a.txt", b"alpha")
    store.put_bytes("d/b.txt", b"bravo!")
    store.put_bytes("d/e/c.txt", b"charlie")
    store.put_bytes("z.bin", b"\x00" * 10)


def test_store_satisfies_protocol(store: ArtifactStore) -> None:
    assert isinstance(store, ArtifactStore)


def test_bytes_round_trip(store: ArtifactStore) -> None:
    assert store.put_bytes("m/weights.bin", b"\x00\x01payload") == 9
    assert store.get_bytes("m/weights.bin") == b"\x00\x01payload"
    with store.open("m/weights.bin") as f:
        assert f.read(2) == b"\x00\x01"
        assert f.read() == b"payload"
    assert store.exists("m/weights.bin")
    assert store.size("m/weights.bin") == 9


def test_empty_file_round_trip(store: ArtifactStore) -> None:
    assert store.put_bytes("empty", b"") == 0
    assert store.exists("empty")
    assert store.size("empty") == 0
    assert store.get_bytes("empty") == b""


def test_file_round_trip_and_download(store: ArtifactStore, tmp_path: Path) -> None:
    src = tmp_path / "in.bin"
    src.write_bytes(os.urandom(3 * MIB + 17))
    assert store.put_file("runs/1/model.bin", src) == src.stat().st_size
    out = tmp_path / "out" / "deep" / "model.bin"
    store.download("runs/1/model.bin", out)
    assert out.read_bytes() == src.read_bytes()


def test_big_stream_round_trip_is_read_in_chunks(store: ArtifactStore) -> None:
    stream = PatternStream(BIG)
    assert store.put_stream("big/data.bin", stream) == BIG
    assert stream.largest_read < BIG
    assert store.size("big/data.bin") == BIG
    assert store.get_bytes("big/data.bin") == pattern(0, BIG)


def test_unicode_and_spaces_in_paths(store: ArtifactStore) -> None:
    store.put_bytes("dir with space/ünï cødé.txt", b"ok")
    assert store.get_bytes("dir with space/ünï cødé.txt") == b"ok"
    assert [i.path for i in store.list("dir with space")] == ["dir with space/ünï cødé.txt"]


def test_list_shows_immediate_children_with_directories(store: ArtifactStore) -> None:
    make_tree(store)
    assert store.list() == [
        ArtifactInfo("a.txt", False, 5),
        ArtifactInfo("d", True, None),
        ArtifactInfo("z.bin", False, 10),
    ]
    assert store.list("d") == [ArtifactInfo("d/b.txt", False, 6), ArtifactInfo("d/e", True, None)]
    assert store.list("d/") == store.list("d")
    assert store.list("d/e") == [ArtifactInfo("d/e/c.txt", False, 7)]


def test_list_recursive_gives_every_file(store: ArtifactStore) -> None:
    make_tree(store)
    assert store.list("", recursive=True) == [
        ArtifactInfo("a.txt", False, 5),
        ArtifactInfo("d/b.txt", False, 6),
        ArtifactInfo("d/e/c.txt", False, 7),
        ArtifactInfo("z.bin", False, 10),
    ]
    assert [i.path for i in store.list("d", recursive=True)] == ["d/b.txt", "d/e/c.txt"]


def test_list_of_missing_prefix_or_file_is_empty(store: ArtifactStore) -> None:
    make_tree(store)
    assert store.list("nope") == []
    assert store.list("nope", recursive=True) == []
    assert store.list("a.txt") == []


def test_download_prefix_recursively(store: ArtifactStore, tmp_path: Path) -> None:
    make_tree(store)
    store.download("d", tmp_path / "out")
    got = {str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*")}
    assert got == {"b.txt", "e", "e/c.txt"}
    assert (tmp_path / "out" / "e" / "c.txt").read_bytes() == b"charlie"
    store.download("", tmp_path / "all")
    assert (tmp_path / "all" / "d" / "e" / "c.txt").read_bytes() == b"charlie"
    assert (tmp_path / "all" / "a.txt").read_bytes() == b"alpha"


def test_download_missing_raises(store: ArtifactStore, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        store.download("nope", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_overwrite_replaces_content(store: ArtifactStore) -> None:
    store.put_bytes("f", b"old content that is longer")
    assert store.put_bytes("f", b"new") == 3
    assert store.get_bytes("f") == b"new"
    assert store.size("f") == 3
    assert [i.path for i in store.list()] == ["f"]


def test_missing_file_errors(store: ArtifactStore) -> None:
    make_tree(store)
    for call in (store.open, store.get_bytes, store.size):
        with pytest.raises(FileNotFoundError):
            call("nope.txt")
        with pytest.raises(FileNotFoundError):
            call("d")  # a directory is not a file
    assert not store.exists("nope.txt")
    assert store.exists("d")
    assert store.exists("d/e/c.txt")


def test_delete_file_prefix_and_root(store: ArtifactStore) -> None:
    make_tree(store)
    store.delete("a.txt")
    assert not store.exists("a.txt")
    store.delete("d")
    assert not store.exists("d")
    assert not store.exists("d/e/c.txt")
    assert store.list() == [ArtifactInfo("z.bin", False, 10)]
    store.delete("never/was")  # missing is fine
    store.delete("")
    assert store.list("", recursive=True) == []


def test_deleting_last_file_leaves_no_empty_directory(store: ArtifactStore) -> None:
    store.put_bytes("x/y/only.txt", b"1")
    store.put_bytes("keep.txt", b"2")
    store.delete("x/y/only.txt")
    assert [i.path for i in store.list()] == ["keep.txt"]
    assert not store.exists("x")


BAD_PATHS = {
    "dotdot": "../escape.txt",
    "nested-dotdot": "a/../../escape.txt",
    "absolute": "/etc/passwd",
    "backslash": "a\\..\\escape.txt",
    "nul": "a\x00b",
    "newline": "a\nb",
    "empty-segment": "a//b",
    "too-long": "x" * 1025,
    "root": "",
}


@pytest.mark.parametrize("bad", BAD_PATHS.values(), ids=BAD_PATHS.keys())
def test_bad_paths_rejected_and_nothing_written(backend: Backend, bad: str) -> None:
    store = backend.store
    store.put_bytes("inside.txt", b"x")
    before = backend.everything()
    for write in (store.put_bytes, lambda p, d: store.put_stream(p, io.BytesIO(d))):
        with pytest.raises(InvalidInput, match="Artifact path"):
            write(bad, b"evil")
    for call in (store.open, store.get_bytes, store.size, store.exists):
        with pytest.raises(InvalidInput):
            call(bad)
    if bad:  # "" is the root, which list and delete accept
        with pytest.raises(InvalidInput):
            store.delete(bad)
        with pytest.raises(InvalidInput):
            store.list(bad)
    assert backend.everything() == before
    assert store.get_bytes("inside.txt") == b"x"


def test_failed_stream_leaves_nothing(backend: Backend) -> None:
    store = backend.store
    store.put_bytes("keep.txt", b"k")
    before = backend.everything()
    stream = PatternStream(BIG, fail_at=10 * MIB)
    with pytest.raises(ConnectionResetError):
        store.put_stream("new/half.bin", stream)
    assert not store.exists("new/half.bin")
    assert not store.exists("new")
    assert store.list("", recursive=True) == [ArtifactInfo("keep.txt", False, 1)]
    assert backend.everything() == before


def test_failed_overwrite_keeps_old_content(store: ArtifactStore) -> None:
    store.put_bytes("model.bin", b"good old model")
    with pytest.raises(ConnectionResetError):
        store.put_stream("model.bin", PatternStream(BIG, fail_at=9 * MIB))
    assert store.get_bytes("model.bin") == b"good old model"
    assert [i.path for i in store.list("", recursive=True)] == ["model.bin"]


def test_reader_during_overwrite_sees_old_or_new_in_full(store: ArtifactStore) -> None:
    size = 4 * MIB
    versions = {b"a" * size, b"b" * size}
    store.put_bytes("shared.bin", b"a" * size)
    seen: list[bytes] = []
    bad: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            data = store.get_bytes("shared.bin")
            if data not in versions:
                bad.append(f"read {len(data)} bytes of mixed or partial content")
                return
            seen.append(data[:1])

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(6):
            store.put_stream("shared.bin", PatternStream(size, fill=b"ab"[i % 2 : i % 2 + 1]))
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not bad
    assert seen


def test_uri_for_opens_the_same_data(store: ArtifactStore) -> None:
    make_tree(store)
    assert store.uri_for("") == store.uri
    sub_uri = store.uri_for("d/e")
    assert sub_uri.startswith(store.uri.rstrip("/") + "/")
    endpoint = getattr(store, "endpoint_url", None)
    sub = open_artifact_store(sub_uri, s3_endpoint_url=endpoint)
    assert sub.get_bytes("c.txt") == b"charlie"


# -- s3 only -----------------------------------------------------------------------


@pytest.mark.s3
def test_failed_multipart_upload_is_aborted(s3_server: S3Server) -> None:  # noqa: F811
    uri = s3_server.fresh_uri()
    store = open_artifact_store(uri, s3_endpoint_url=s3_server.endpoint_url)
    with pytest.raises(ConnectionResetError):
        store.put_stream("half.bin", PatternStream(BIG, fail_at=17 * MIB))
    uploads = s3_server.client().list_multipart_uploads(Bucket=s3_server.bucket)
    key = uri.removeprefix(f"s3://{s3_server.bucket}/") + "/half.bin"
    assert [u for u in uploads.get("Uploads", []) if u["Key"] == key] == []


@pytest.mark.s3
def test_missing_bucket_is_a_sentence(s3_server: S3Server) -> None:  # noqa: F811
    store = open_artifact_store("s3://no-such-bucket-naiad", s3_endpoint_url=s3_server.endpoint_url)
    with pytest.raises(NotFound, match="does not exist"):
        store.put_bytes("x", b"1")


def test_s3_uri_without_bucket_rejected() -> None:
    with pytest.raises(InvalidInput, match="bucket"):
        open_artifact_store("s3://", s3_endpoint_url="http://127.0.0.1:9")


def test_importing_the_package_does_not_import_boto3() -> None:
    code = (
        "import sys, naiad.store.artifacts as a; "
        "a.open_artifact_store('/tmp/naiad-import-check'); "
        "sys.exit(1 if 'boto3' in sys.modules or 'botocore' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
