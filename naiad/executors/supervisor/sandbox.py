"""A job's processes in a sandbox where the Naiad home is out of reach (``NAIAD_JOB_SANDBOX``:
by default a user's job, where bubblewrap is installed; the owner's own jobs keep their
warm starts).

The training processes run under bubblewrap (``bwrap``): the machine's file system as it
is, but with an empty tmpfs over the home, into which only the job's own directory comes
back (read-write), with what its staged channels link to in the home and the job
environments' cache (read-only). They get a PID namespace of their own with a fresh
``/proc`` (so no ``/proc/PID/root`` of the server leads back to the home) and no
capabilities (so a job run as root cannot unmount the tmpfs). The network stays shared:
the job reaches the server through its API with its own token, as before.

The supervisor itself stays outside: it stages inputs and uploads outputs from the home.
"""

import os
import shutil
from pathlib import Path

from naiad.executors.base import SANDBOX_TOOL

MISSING = (
    "This job runs in a sandbox (NAIAD_JOB_SANDBOX), but bubblewrap (bwrap) is not installed "
    "on this machine: install it (apt-get install bubblewrap, dnf install bubblewrap)."
)


class SandboxMissing(RuntimeError):
    pass


def wrap(cmd: list[str], home: Path, job_root: Path, python: str) -> list[str]:
    """``cmd`` run under bubblewrap, with ``home`` hidden but for what the job needs."""
    bwrap = shutil.which(SANDBOX_TOOL)
    if bwrap is None:
        raise SandboxMissing(MISSING)
    home = home.resolve()
    args = [bwrap, "--dev-bind", "/", "/", "--tmpfs", str(home)]
    for kept in _read_only(home, job_root, Path(python)):
        args += ["--ro-bind", str(kept), str(kept)]
    root = str(job_root.resolve())
    args += ["--bind", root, root]
    # No --die-with-parent: a stop's SIGTERM reaches bwrap and the script at once, and the
    # script must outlive bwrap long enough to end gracefully. The supervisor, a subreaper,
    # ends whatever is left.
    args += ["--unshare-pid", "--proc", "/proc", "--cap-drop", "ALL"]
    return [*args, "--", *cmd]


def _read_only(home: Path, job_root: Path, python: Path) -> list[Path]:
    """What in the home the job reads besides its own directory: the environment its Python
    comes from, and the targets of its channels' links (the fewest directories holding
    them all), never the home itself."""
    wanted: set[Path] = set()
    if _inside(python.parent, home):
        wanted.add(python.parent.parent)  # the env: bin/python's grandparent
    root = job_root.resolve()
    for folder, dirs, files in os.walk(job_root):
        for name in [*dirs, *files]:
            link = Path(folder) / name
            if not link.is_symlink():
                continue
            target = link.resolve()
            if _inside(target, home) and not _inside(target, root) and target.exists():
                wanted.add(target if target.is_dir() else target.parent)
    kept = sorted(wanted, key=lambda p: len(p.parts))
    covered: list[Path] = []
    for path in kept:
        if path != home and not any(_inside(path, c) for c in covered):
            covered.append(path)
    return covered


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents
