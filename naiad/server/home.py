"""The server's home: owner-only, held by one server at a time, and missed when it vanishes.

The home holds the admin token, the database, job directories and models: whoever can
read it owns the platform, so it is 0700 and the server's umask keeps everything it
creates owner-only. A lock file held for the server's life keeps a second server off
the same home; and a server whose home is deleted under it says so instead of writing
into files nobody will ever read again.
"""

import contextlib
import fcntl
import json
import os
import secrets
import stat
import time
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from naiad.core.errors import Conflict
from naiad.core.home import HomeLayout
from naiad.server.errors import send_error

OWNER_ONLY_UMASK = 0o077
CHECK_EVERY_S = 1.0


def secure_home(home: Path) -> bool:
    """Create ``home`` owner-only, or make an existing one so; True when it had to tighten.

    Files are checked only when the directory itself was open to others: once the home
    is 0700 nothing inside can be reached by another user, and later starts stay cheap.
    """
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    if stat.S_IMODE(home.stat().st_mode) & 0o077 == 0:
        return False
    for directory, dirs, files in os.walk(home):
        for name in dirs + files:
            path = os.path.join(directory, name)
            with contextlib.suppress(OSError):
                mode = os.lstat(path).st_mode
                if not stat.S_ISLNK(mode) and stat.S_IMODE(mode) & 0o077:
                    os.chmod(path, stat.S_IMODE(mode) & 0o700)
    os.chmod(home, 0o700)
    return True


class HomeInUse(Conflict):
    """Another server holds this home's lock."""


def lock_home(home: HomeLayout) -> int:
    """Hold the home's lock for this process's life; returns the descriptor to keep open.

    ``flock`` is released by the kernel when the process dies, however it dies, so a
    crashed server never leaves a stale lock behind.
    """
    fd = os.open(home.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + 1.0  # a client probing the lock holds it for an instant
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() < deadline:
                time.sleep(0.02)
                continue
        os.close(fd)
        holder = ""
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            record = json.loads(home.server_file.read_text())
            holder = f" (pid {record['pid']}, {record['url']})"
        raise HomeInUse(
            f"Another Naiad server{holder} already uses the home {home.root}. Use that one "
            "(`naiad server status`), stop it first (`naiad server stop`), or give this one "
            "its own home with NAIAD_HOME."
        ) from None


def home_id(home: HomeLayout) -> str:
    """The home's random id (``/health`` reports it), made on the first start."""
    try:
        return home.id_file.read_text().strip()
    except FileNotFoundError:
        pass
    made = secrets.token_hex(8)
    fd = os.open(home.id_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(made + "\n")
    return made


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class HomeWatch:
    """Notices when the home (or the SQLite file in it) is deleted or replaced.

    A deleted directory's inode lives on while the server holds it open, so writes
    would "succeed" into files no one can reach. Checked at most once a second; once
    lost, always lost: the server must be restarted on a real home.
    """

    def __init__(self, home: Path, database: Path | None) -> None:
        self.home, self.database = home, database
        self.id = home_id(HomeLayout(home))
        self._paths = [p for p in (home, database) if p is not None]
        self._ids = [_identity(p) for p in self._paths]
        self._checked = time.monotonic()
        self._lost: str | None = None

    def lost(self) -> str | None:
        """None while the home is in place, else the sentence to answer with."""
        if self._lost is not None or time.monotonic() - self._checked < CHECK_EVERY_S:
            return self._lost
        self._checked = time.monotonic()
        for path, known in zip(self._paths, self._ids, strict=True):
            if known is not None and _identity(path) != known:
                self._lost = (
                    f"This server's home {self.home} was deleted or replaced while it ran "
                    f"({path} is gone), so it stores nothing more and has stopped its jobs and "
                    "endpoint replicas. Stop this server and start it again (a new home is "
                    "created empty, or restore the old one first)."
                )
                break
        return self._lost


class HomeGuard:
    """503 for every write once the home is lost: a 201 into a deleted database is a lie."""

    SAFE = frozenset({"GET", "HEAD", "OPTIONS"})

    def __init__(self, app: ASGIApp, watch: HomeWatch) -> None:
        self.app, self.watch = app, watch

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in self.SAFE:
            lost = self.watch.lost()
            if lost is not None:
                await send_error(send, 503, "home_lost", lost)
                return
        await self.app(scope, receive, send)
