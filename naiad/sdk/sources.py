"""The source snapshot of a job: which files go, checked and packed before anything is sent.

Everything that can be wrong with a source directory is found here, on the user's
machine, before an upload: a symlink (the snapshot holds plain files only, so it would
be refused later anyway), a directory so big it is probably data. What goes follows
``.naiadignore`` in the directory (gitignore syntax, via ``pathspec``) after a few
defaults (VCS folders, caches, virtualenvs), which a ``!pattern`` there can undo.
"""

from __future__ import annotations

import gzip
import os
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING

from naiad.core.errors import InvalidInput
from naiad.core.units import human_bytes

if TYPE_CHECKING:
    from pathspec import PathSpec

IGNORE_FILE = ".naiadignore"
# Left out unless .naiadignore says otherwise ("!node_modules/"); gitignore syntax.
DEFAULT_IGNORE = (
    ".git/",
    ".hg/",
    ".svn/",
    "__pycache__/",
    "*.pyc",
    ".venv/",
    ".ipynb_checkpoints/",
    "node_modules/",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    ".tox/",
    ".DS_Store",
)
LARGE_BYTES = 50 * 1000 * 1000  # above this a warning names what takes the room
CHUNK = 1024 * 1024

# (phase, bytes done, bytes in all): phase "pack" counts source bytes read, "upload"
# counts compressed bytes sent.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class SourceFile:
    path: Path
    arcname: str  # posix path relative to the source directory
    size: int


@dataclass(frozen=True)
class SourcePlan:
    """The files a snapshot of ``root`` holds, found and checked but not yet read."""

    root: Path
    files: tuple[SourceFile, ...]

    @property
    def total(self) -> int:
        return sum(f.size for f in self.files)

    def biggest(self, n: int = 3) -> list[tuple[str, int]]:
        """The top-level files and directories taking the most room, largest first."""
        sizes: dict[str, int] = {}
        for f in self.files:
            head, sep, _ = f.arcname.partition("/")
            key = head + "/" if sep else head
            sizes[key] = sizes.get(key, 0) + f.size
        return sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))[:n]

    def warning(self) -> str | None:
        """A sentence when the snapshot is large enough to be worth a second look."""
        if self.total <= LARGE_BYTES:
            return None
        # the largest, and the next ones that take at least 5% of it all
        big = [e for i, e in enumerate(self.biggest()) if i == 0 or e[1] * 20 >= self.total]
        shown = ", ".join(f"{name} ({human_bytes(size)})" for name, size in big)
        return (
            f"The source directory {self.root} is {human_bytes(self.total)} "
            f"({len(self.files):,} files); the largest: {shown}. Keep data out of it and "
            f"pass it with --input, or list it in {IGNORE_FILE} (gitignore syntax)."
        )


def _ignore_spec(root: Path) -> PathSpec:
    import pathspec  # loaded on the first snapshot, not with the SDK

    lines = list(DEFAULT_IGNORE)
    ignore_file = root / IGNORE_FILE
    if ignore_file.is_file():
        lines += ignore_file.read_text(errors="replace").splitlines()
    try:
        return pathspec.GitIgnoreSpec.from_lines(lines)
    except ValueError as exc:
        raise InvalidInput(f"{ignore_file} has a pattern that is not valid: {exc}.") from None


def _symlink(path: Path, rel: str) -> InvalidInput:
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    return InvalidInput(
        f"The source directory has a symlink, {rel} -> {target}; a snapshot holds plain "
        f"files only. Copy what it points to into the directory, pass data with --input, "
        f"or list {rel} in {IGNORE_FILE}."
    )


def plan_source(source_dir: str | Path) -> SourcePlan:
    """The files to snapshot, in a stable order; refuses symlinks that are not ignored."""
    root = Path(source_dir).expanduser()
    if not root.is_dir():
        raise InvalidInput(f"Source directory {str(root)!r} does not exist or is not a directory.")
    spec = _ignore_spec(root)
    files: list[SourceFile] = []
    for dirpath, dirnames, filenames in os.walk(root):  # never follows symlinked directories
        here = Path(dirpath)
        base = here.relative_to(root).as_posix()
        prefix = "" if base == "." else base + "/"
        kept = []
        for name in sorted(dirnames):
            rel = prefix + name
            if spec.match_file(rel + "/") or (here / name / "pyvenv.cfg").is_file():
                continue  # ignored, or a virtualenv whatever its name
            if (here / name).is_symlink():
                raise _symlink(here / name, rel)
            kept.append(name)
        dirnames[:] = kept
        for name in sorted(filenames):
            rel = prefix + name
            path = here / name
            if spec.match_file(rel):
                continue
            if path.is_symlink():
                raise _symlink(path, rel)
            try:
                info = path.stat()
            except OSError as exc:
                raise InvalidInput(f"Cannot read {path}: {exc.strerror or exc}.") from None
            if path.is_file():  # sockets, pipes and devices are not code
                files.append(SourceFile(path, rel, info.st_size))
    return SourcePlan(root, tuple(files))


class _Counting:
    """A file read through while packing, reporting how far the whole snapshot has got."""

    def __init__(self, handle: IO[bytes], report: Callable[[int], None]) -> None:
        self.handle, self.report = handle, report

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.report(len(data))
        return data


def pack(plan: SourcePlan, progress: Progress | None = None) -> IO[bytes]:
    """The snapshot as a .tar.gz in a temporary file, rewound (close it when done).

    The gzip header carries no time, so the same files give the same bytes and the
    server, which stores snapshots by content hash, keeps one copy.
    """
    out = tempfile.TemporaryFile()  # noqa: SIM115 - the caller closes it
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress("pack", done, plan.total)

    try:
        with (
            gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=6) as gz,
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            for f in plan.files:
                try:
                    info = tar.gettarinfo(str(f.path), arcname=f.arcname)
                    # Contents and modes only: the same files give the same bytes (one upload).
                    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                    with open(f.path, "rb") as handle:
                        tar.addfile(info, _Counting(handle, advance))
                except OSError as exc:
                    raise InvalidInput(f"Cannot read {f.path}: {exc.strerror or exc}.") from None
    except BaseException:
        out.close()
        raise
    out.seek(0)
    return out


def chunks(archive: IO[bytes], progress: Progress | None = None) -> tuple[int, Iterator[bytes]]:
    """(size, an iterator of the archive's bytes that reports each chunk as it is sent)."""
    size = archive.seek(0, os.SEEK_END)
    archive.seek(0)

    def body() -> Iterator[bytes]:
        sent = 0
        while data := archive.read(CHUNK):
            yield data
            sent += len(data)
            if progress is not None:
                progress("upload", sent, size)

    return size, body()
