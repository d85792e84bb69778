"""Artifacts as files under one local directory (the default, under the Naiad home).

Every write goes to a `.naiad-tmp-*` file in the destination directory and is then
renamed over the destination, so a reader sees the old file or the new one, never a
part; a failed write (a full disk included) removes its temp file and any directories
it created for itself.
"""

import contextlib
import errno
import functools
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, BinaryIO
from urllib.parse import urlsplit
from urllib.request import url2pathname

from naiad.core.errors import Conflict, InvalidInput
from naiad.store.artifacts.base import CHUNK_SIZE, TMP_PREFIX, ArtifactInfo, safe_path

FILE_MODE = 0o600  # owner-only, as the whole Naiad home is
_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})  # no space left, or the quota is used up


def root_from_uri(uri: str) -> Path:
    """The directory a `file://` URI or an absolute path names."""
    if uri.startswith("file:"):
        parts = urlsplit(uri)
        if parts.netloc not in ("", "localhost"):
            raise InvalidInput(
                f"Artifact URI {uri!r} names host {parts.netloc!r}; a file:// URI must be "
                "local, like 'file:///var/naiad/artifacts'."
            )
        raw = url2pathname(parts.path)
    else:
        raw = uri
    if not os.path.isabs(raw):
        raise InvalidInput(
            f"Artifact location {uri!r} is not an absolute path; use 'file:///abs/path' "
            "or '/abs/path'."
        )
    return Path(os.path.abspath(raw))


def copy_stream(src: IO[bytes], dst: BinaryIO) -> int:
    """Copy in 1 MiB chunks so a big input never sits whole in memory."""
    total = 0
    while chunk := src.read(CHUNK_SIZE):
        dst.write(chunk)
        total += len(chunk)
    return total


def atomic_write(
    dest: Path, writer: Callable[[BinaryIO], int], make_parent: Callable[[], None] | None = None
) -> int:
    """Write via a temp file beside `dest`, then rename it over `dest`.

    `make_parent` (default: mkdir -p) runs before the temp file is created and once more
    if a concurrent delete removed the directory in between. On any exception the temp
    file is removed.
    """
    ensure = make_parent or (lambda: dest.parent.mkdir(parents=True, exist_ok=True))
    for attempt in range(3):
        ensure()
        try:
            fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, dir=dest.parent)
            break
        except FileNotFoundError:
            if attempt == 2:
                raise
    try:
        with os.fdopen(fd, "wb") as f:
            written = writer(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return written


class LocalArtifactStore:
    """An ArtifactStore over a directory; `uri` is its file:// URI."""

    def __init__(self, uri: str) -> None:
        self.root = root_from_uri(uri)
        self.uri = self.root.as_uri()

    def __repr__(self) -> str:
        return f"LocalArtifactStore({self.uri!r})"

    def _target(self, path: str, *, allow_root: bool = False) -> tuple[str, Path]:
        rel = safe_path(path, allow_root=allow_root)
        return rel, (self.root / rel if rel else self.root)

    def _prune(self, directory: Path) -> None:
        """Remove now-empty directories up to the root, as S3 has no empty 'folders'."""
        while directory != self.root and directory.is_relative_to(self.root):
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent

    def _write(self, path: str, writer: Callable[[BinaryIO], int]) -> int:
        rel, dest = self._target(path)

        def make_parent() -> None:
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError):
                raise Conflict(
                    f"Cannot write artifact {rel!r}: a parent of it is a file. "
                    "Delete that file or choose another path."
                ) from None

        try:
            return atomic_write(dest, writer, make_parent)
        except IsADirectoryError:
            raise Conflict(
                f"Cannot write artifact {rel!r}: it is a directory. "
                "Delete it first or choose another path."
            ) from None
        except OSError as exc:
            self._prune(dest.parent)
            if exc.errno in _FULL:  # name the store, not a temp file (or nothing, for write())
                raise OSError(exc.errno, exc.strerror, str(self.root)) from exc
            raise
        except BaseException:
            self._prune(dest.parent)
            raise

    def _missing(self, rel: str, why: str = "no such file") -> FileNotFoundError:
        return FileNotFoundError(f"Artifact {rel!r} not found in {self.uri}: {why}.")

    def put_file(self, path: str, local_path: str | os.PathLike[str]) -> int:
        with open(local_path, "rb") as src:
            return self._write(path, lambda f: copy_stream(src, f))

    def put_stream(self, path: str, stream: IO[bytes]) -> int:
        return self._write(path, lambda f: copy_stream(stream, f))

    def put_bytes(self, path: str, data: bytes) -> int:
        return self._write(path, lambda f: f.write(data))

    def open(self, path: str) -> BinaryIO:
        rel, target = self._target(path)
        try:
            return open(target, "rb")
        except IsADirectoryError:
            raise self._missing(rel, "it is a directory") from None
        except (FileNotFoundError, NotADirectoryError):
            raise self._missing(rel) from None

    def get_bytes(self, path: str) -> bytes:
        with self.open(path) as f:
            return f.read()

    def download(self, path: str, local_path: str | os.PathLike[str]) -> None:
        rel, source = self._target(path, allow_root=True)
        dest = Path(local_path)
        if source.is_file():
            with open(source, "rb") as src:
                atomic_write(dest, lambda f: copy_stream(src, f))
            return
        if not source.is_dir():
            raise self._missing(rel, "no such file or directory")
        for info in self.list(rel, recursive=True):
            out = dest / os.path.relpath(info.path, rel or ".")
            with open(self.root / info.path, "rb") as src:
                atomic_write(out, functools.partial(copy_stream, src))

    def exists(self, path: str) -> bool:
        return self._target(path)[1].exists()

    def size(self, path: str) -> int:
        rel, target = self._target(path)
        try:
            st = target.stat()
        except (FileNotFoundError, NotADirectoryError):
            raise self._missing(rel) from None
        if not target.is_file():
            raise self._missing(rel, "it is a directory")
        return st.st_size

    def list(self, prefix: str = "", recursive: bool = False) -> list[ArtifactInfo]:
        rel, base = self._target(prefix, allow_root=True)
        if not base.is_dir():
            return []
        lead = f"{rel}/" if rel else ""
        out: list[ArtifactInfo] = []
        if recursive:
            for dirpath, _dirs, files in os.walk(base):
                sub = os.path.relpath(dirpath, base).replace(os.sep, "/")
                here = lead if sub == "." else f"{lead}{sub}/"
                for name in files:
                    info = self._file_info(os.path.join(dirpath, name), here + name)
                    if info is not None:
                        out.append(info)
        else:
            with os.scandir(base) as entries:
                for entry in entries:
                    if entry.is_dir():
                        out.append(ArtifactInfo(lead + entry.name, True, None))
                    else:
                        info = self._file_info(entry.path, lead + entry.name)
                        if info is not None:
                            out.append(info)
        return sorted(out, key=lambda i: i.path)

    @staticmethod
    def _file_info(full: str, rel: str) -> ArtifactInfo | None:
        """Info for a finished file; None for upload temp files and files gone meanwhile."""
        if os.path.basename(full).startswith(TMP_PREFIX):
            return None
        try:
            return ArtifactInfo(rel, False, os.stat(full).st_size)
        except FileNotFoundError:
            return None

    def delete(self, path: str) -> None:
        rel, target = self._target(path, allow_root=True)
        if not rel:
            children = list(self.root.iterdir()) if self.root.is_dir() else []
            for child in children:
                _remove(child)
            return
        _remove(target)
        self._prune(target.parent)

    def uri_for(self, path: str) -> str:
        rel, target = self._target(path, allow_root=True)
        return target.as_uri() if rel else self.uri


def _remove(target: Path) -> None:
    """Remove a file or a directory tree; already gone is fine."""
    try:
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink()
    except (FileNotFoundError, NotADirectoryError):
        pass
