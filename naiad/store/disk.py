"""Removing files and trees, and counting the bytes the disk gets back (for `naiad gc`)."""

import os
import shutil
import stat
from collections.abc import Iterable
from pathlib import Path


def subdirs(root: Path) -> list[Path]:
    """The directories in ``root`` (not links to them), sorted; none when it is missing."""
    return [p for p in children(root) if p.is_dir() and not p.is_symlink()]


def children(root: Path) -> list[Path]:
    try:
        return sorted(root.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def age(path: Path, now: float) -> float:
    try:
        return now - path.lstat().st_mtime
    except FileNotFoundError:
        return 0.0


def usage(path: Path) -> int:
    """Bytes the disk gets back when ``path`` goes; links are not followed, and a file
    with other hard links frees nothing."""
    total = 0
    for item in _walk(path):
        try:
            st = item.lstat() if isinstance(item, Path) else item.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            continue
        total += st.st_blocks * 512
    return total


def _walk(path: Path) -> Iterable[Path | os.DirEntry[str]]:
    yield path
    if not path.is_dir() or path.is_symlink():
        return
    stack = [path]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    yield entry
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(Path(entry.path))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue


def remove(path: Path, problems: list[str] | None = None) -> int:
    """Remove a file or a tree (a link, not what it points to); returns the bytes freed.

    Without ``problems`` a failure raises; with it, the failure becomes a sentence there.
    """
    size = usage(path)
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        if problems is None:
            raise
        problems.append(f"Could not remove {path}: {exc.strerror or exc}.")
        return max(0, size - usage(path))
    return size
