"""The artifact store contract every backend implements, and the path rules they share.

Paths are checked here, once, so every backend rejects the same inputs with the same
sentence and none of them can be talked into writing outside its root.
"""

import os
import unicodedata
from dataclasses import dataclass
from typing import IO, BinaryIO, Protocol, runtime_checkable

from naiad.core.errors import InvalidInput

MAX_PATH_BYTES = 1024
MAX_SEGMENT_BYTES = 255
TMP_PREFIX = ".naiad-tmp-"
CHUNK_SIZE = 1024 * 1024


@dataclass(frozen=True)
class ArtifactInfo:
    """One entry of a listing; `size` is None for directories."""

    path: str
    is_dir: bool
    size: int | None


@runtime_checkable
class ArtifactStore(Protocol):
    """Files addressed by '/'-separated paths relative to the store's root URI."""

    uri: str

    def put_file(self, path: str, local_path: str | os.PathLike[str]) -> int:
        """Upload a local file atomically; return the bytes written."""
        ...

    def put_stream(self, path: str, stream: IO[bytes]) -> int:
        """Upload a stream read to EOF in chunks, atomically; return the bytes written."""
        ...

    def put_bytes(self, path: str, data: bytes) -> int:
        """Upload bytes atomically; return the bytes written."""
        ...

    def open(self, path: str) -> BinaryIO:
        """A readable binary file object; FileNotFoundError if there is no such file."""
        ...

    def get_bytes(self, path: str) -> bytes:
        """The whole content of a file; FileNotFoundError if missing."""
        ...

    def download(self, path: str, local_path: str | os.PathLike[str]) -> None:
        """Copy a file, or a directory prefix recursively, to `local_path`."""
        ...

    def exists(self, path: str) -> bool:
        """True if `path` is a file or a non-empty directory."""
        ...

    def size(self, path: str) -> int:
        """Size of a file in bytes; FileNotFoundError if missing."""
        ...

    def list(self, prefix: str = "", recursive: bool = False) -> list[ArtifactInfo]:
        """Entries under `prefix`, sorted by path (files only when recursive); [] if missing."""
        ...

    def delete(self, path: str) -> None:
        """Remove a file or a whole prefix; a missing path is not an error."""
        ...

    def uri_for(self, path: str) -> str:
        """The full URI of `path` inside this store."""
        ...


# Unicode categories refused in paths: controls (Cc), format characters such as U+202E
# (Cf), and the line and paragraph separators U+2028/U+2029 (Zl, Zp).
_INVISIBLE = frozenset({"Cc", "Cf", "Zl", "Zp"})


def _reject(path: str, problem: str) -> InvalidInput:
    shown = path if len(path) <= 80 else path[:77] + "..."
    return InvalidInput(
        f"Artifact path {shown!r} {problem}. Use a relative path of '/'-separated names, "
        "like 'model/weights.safetensors'."
    )


def safe_path(path: str, *, allow_root: bool = False) -> str:
    """Return `path` normalized ('.' segments and one trailing '/' dropped) or raise.

    Raises InvalidInput for anything that could escape the root or that some backend
    cannot store: '..', absolute paths, backslashes, control and format characters (a
    right-to-left override shows a name other than the one stored), empty segments,
    names reserved for in-flight uploads, and over-long paths or names.
    """
    if not isinstance(path, str):
        raise InvalidInput(f"Artifact path must be a string, not {type(path).__name__}.")
    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError:
        raise _reject(path, "is not valid Unicode text") from None
    if len(encoded) > MAX_PATH_BYTES:
        raise _reject(path, f"is longer than {MAX_PATH_BYTES} bytes; shorten it")
    if any(unicodedata.category(ch) in _INVISIBLE for ch in path):
        raise _reject(
            path,
            "contains a control character or a format character (such as NUL, a newline or "
            "the right-to-left override U+202E), which could hide what the name really is",
        )
    if "\\" in path:
        raise _reject(path, "contains a backslash; separate names with '/'")
    if path.startswith("/"):
        raise _reject(path, "is absolute; drop the leading '/'")
    body = path.removesuffix("/")
    segments = body.split("/") if body else []
    if "" in segments:
        raise _reject(path, "has an empty name between two '/'")
    if ".." in segments:
        raise _reject(path, "contains '..', which could leave the artifact root")
    kept = [s for s in segments if s != "."]
    if not kept:
        if allow_root:
            return ""
        raise _reject(path, "names the store root, not a file; give a file name")
    for segment in kept:
        if segment.startswith(TMP_PREFIX):
            raise _reject(path, f"uses the prefix {TMP_PREFIX!r}, reserved for uploads")
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise _reject(path, f"has a name longer than {MAX_SEGMENT_BYTES} bytes")
    return "/".join(kept)
