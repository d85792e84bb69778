"""A real full disk for tests: a small tmpfs, filled with one ballast file and emptied again.

Mounting needs root with CAP_SYS_ADMIN (a CI machine, not an unprivileged container);
``small_filesystem`` yields None where it is not allowed, and the tests fall back to
raising ENOSPC where the operating system would.
"""

import contextlib
import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

_CHUNKS = (1024 * 1024, 64 * 1024, 4096, 512)


@contextlib.contextmanager
def small_filesystem(where: Path, size_mb: int = 32) -> Iterator[Path | None]:
    """A tmpfs of ``size_mb`` mounted at ``where`` while the block runs, or None."""
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        yield None
        return
    command = ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs", str(where)]
    if subprocess.run(command, capture_output=True, check=False).returncode != 0:
        yield None
        return
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


class Ballast:
    """One file that takes every free byte of its filesystem, and gives them back."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fill(self) -> int:
        """Grow the file until the filesystem says ENOSPC; returns its size."""
        with open(self.path, "ab", buffering=0) as f:
            for size in _CHUNKS:
                block = b"\0" * size
                while True:
                    try:
                        f.write(block)
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break
        return self.path.stat().st_size

    def free(self, nbytes: int | None = None) -> None:
        """Give back ``nbytes`` (everything when None)."""
        if nbytes is None:
            self.path.unlink(missing_ok=True)
            return
        size = self.path.stat().st_size
        os.truncate(self.path, max(0, size - nbytes))
