"""Path rules, scheme dispatch and the local store's file-system details (no network)."""

import io
import os
import stat
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from naiad.core.errors import Conflict, InvalidInput
from naiad.store.artifacts import ArtifactInfo, ArtifactStore, open_artifact_store, safe_path
from naiad.store.artifacts.local import LocalArtifactStore

# -- safe_path ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_path", "expected"),
    [
        ("a.txt", "a.txt"),
        ("a/b/c.bin", "a/b/c.bin"),
        ("./a/./b", "a/b"),
        ("dir/", "dir"),
        ("..a/b..", "..a/b.."),
        ("ünï cødé/x y", "ünï cødé/x y"),
    ],
)
def test_safe_path_normalizes(given_path: str, expected: str) -> None:
    assert safe_path(given_path) == expected


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ("../x", "'..'"),
        ("a/../../x", "'..'"),
        ("/etc/passwd", "absolute"),
        ("a\\b", "backslash"),
        ("a\x00b", "control character"),
        ("a\tb", "control character"),
        ("a\x85b", "control character"),
        ("a//b", "empty name"),
        ("x" * 1025, "longer than 1024"),
        ("a/" + "y" * 256, "longer than 255"),
        (".naiad-tmp-123", "reserved"),
        ("\ud800", "Unicode"),
        ("", "root"),
        ("./", "root"),
    ],
)
def test_safe_path_rejects_with_a_sentence(bad: str, says: str) -> None:
    with pytest.raises(InvalidInput, match=says) as info:
        safe_path(bad)
    assert "Use a relative path" in str(info.value)


def test_safe_path_allows_root_only_when_asked() -> None:
    assert safe_path("", allow_root=True) == ""
    assert safe_path("./", allow_root=True) == ""
    with pytest.raises(InvalidInput):
        safe_path("..", allow_root=True)


# Mostly the characters that matter for escaping, plus arbitrary text.
PATHISH = st.lists(
    st.sampled_from(["a", "b", ".", "..", "/", "\\", "\x00", "\n", " ", "é", "~", ":"]), max_size=20
).map("".join) | st.text(max_size=40)


@given(PATHISH)
@settings(max_examples=400)
def test_safe_path_never_escapes_the_root(path: str) -> None:
    root = "/srv/naiad/artifacts"
    try:
        rel = safe_path(path, allow_root=True)
    except InvalidInput:
        return
    joined = os.path.normpath(os.path.join(root, rel))
    assert os.path.commonpath([root, joined]) == root
    assert safe_path(rel, allow_root=True) == rel  # normalizing is idempotent


@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=4))
@settings(max_examples=60, deadline=None)
def test_local_store_holds_any_path_safe_path_accepts(segments: list[str]) -> None:
    path = "/".join(segments)
    try:
        rel = safe_path(path)
    except InvalidInput:
        return
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalArtifactStore(os.path.join(tmp, "root"))
        store.put_bytes(path, b"v")
        assert store.get_bytes(path) == b"v"
        assert [i.path for i in store.list("", recursive=True)] == [rel]
        written = [p for p in Path(tmp).rglob("*") if p.is_file()]
        assert written == [Path(tmp, "root", rel)]


# -- open_artifact_store --------------------------------------------------------------


def test_file_uri_and_plain_path_open_local_stores(tmp_path: Path) -> None:
    by_uri = open_artifact_store(tmp_path.as_uri())
    by_path = open_artifact_store(str(tmp_path))
    assert isinstance(by_uri, LocalArtifactStore)
    assert isinstance(by_path, ArtifactStore)
    assert by_uri.uri == by_path.uri == tmp_path.as_uri()


def test_file_uri_is_percent_decoded_but_plain_path_is_not(tmp_path: Path) -> None:
    store = open_artifact_store((tmp_path / "a b").as_uri())
    store.put_bytes("x", b"1")
    assert (tmp_path / "a b" / "x").read_bytes() == b"1"
    plain = open_artifact_store(str(tmp_path / "c%20d"))
    plain.put_bytes("x", b"2")
    assert (tmp_path / "c%20d" / "x").read_bytes() == b"2"


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("gs://bucket/x", "file://, s3://"),
        ("relative/dir", "no scheme"),
        ("file://otherhost/x", "must be local"),
        ("file:relative", "not an absolute path"),
    ],
)
def test_bad_store_uris_are_rejected(uri: str, says: str) -> None:
    with pytest.raises(InvalidInput, match=says):
        open_artifact_store(uri)


# -- local store details ----------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore((tmp_path / "root").as_uri())


class Chunks(io.RawIOBase):
    """A stream of `size` zero bytes that records its largest single read."""

    def __init__(self, size: int, fail_at: int | None = None, exc: BaseException | None = None):
        self.left, self.done, self.fail_at, self.largest = size, 0, fail_at, 0
        self.exc = exc or OSError("disk on the client side failed")

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self.fail_at is not None and self.done >= self.fail_at:
            raise self.exc
        n = self.left if n < 0 else min(n, self.left)
        self.largest = max(self.largest, n)
        self.left -= n
        self.done += n
        return b"\0" * n


def test_put_stream_copies_in_one_mib_chunks(store: LocalArtifactStore) -> None:
    stream = Chunks(5 * 1024 * 1024 + 3)
    assert store.put_stream("big", stream) == 5 * 1024 * 1024 + 3
    assert stream.largest <= 1024 * 1024


@pytest.mark.parametrize("exc", [OSError("broken"), KeyboardInterrupt()])
def test_interrupted_upload_leaves_no_temp_and_no_new_dirs(
    store: LocalArtifactStore, exc: BaseException
) -> None:
    store.put_bytes("keep", b"k")
    with pytest.raises(type(exc)):
        store.put_stream("new/deeper/file", Chunks(3 * 1024 * 1024, fail_at=1024 * 1024, exc=exc))
    assert sorted(p.name for p in store.root.rglob("*")) == ["keep"]


def test_temp_files_are_hidden_from_listing(store: LocalArtifactStore) -> None:
    store.put_bytes("d/real", b"1")
    (store.root / "d" / ".naiad-tmp-abc123").write_bytes(b"half")
    assert store.list("d") == [ArtifactInfo("d/real", False, 1)]
    assert store.list("", recursive=True) == [ArtifactInfo("d/real", False, 1)]


def test_writing_under_a_file_or_over_a_directory_is_a_conflict(
    store: LocalArtifactStore,
) -> None:
    store.put_bytes("a", b"file")
    store.put_bytes("d/x", b"1")
    with pytest.raises(Conflict, match="parent of it is a file"):
        store.put_bytes("a/b", b"2")
    with pytest.raises(Conflict, match="parent of it is a file"):
        store.put_bytes("a/b/c", b"2")
    with pytest.raises(Conflict, match="is a directory"):
        store.put_bytes("d", b"2")
    assert sorted(p.name for p in store.root.rglob("*")) == ["a", "d", "x"]


def test_written_files_are_owner_only(store: LocalArtifactStore) -> None:
    store.put_bytes("m", b"1")
    assert stat.S_IMODE((store.root / "m").stat().st_mode) == 0o600


def test_uri_for_is_a_percent_encoded_file_uri(store: LocalArtifactStore) -> None:
    assert store.uri_for("a b/c") == (store.root / "a b" / "c").as_uri()
    assert "%20" in store.uri_for("a b/c")


def test_delete_root_keeps_the_root_directory(store: LocalArtifactStore) -> None:
    store.put_bytes("a/b", b"1")
    store.put_bytes("c", b"1")
    store.delete("")
    assert store.root.is_dir()
    assert list(store.root.iterdir()) == []


def test_store_on_a_missing_directory_reads_as_empty(tmp_path: Path) -> None:
    store = LocalArtifactStore(str(tmp_path / "not" / "yet"))
    assert store.list() == []
    assert not store.exists("x")
    store.delete("")
    assert not (tmp_path / "not").exists()
