"""One process the server starts and keeps on this machine: its directory, health and end.

A managed process (an endpoint replica, a notebook server) lives in a directory of
its own: a record file (pid, port, restarts, start time; written atomically after the
start) and a log of its output. It runs in its own session with that directory as its
working directory, so it outlives the server, and a restarted server finds it again from
the record, checked in /proc against its command line (its module, or its standby's, and
``--port N``) and working directory (a deleted one too), so a reused pid never counts. A
kind with a standby (``standby``) can start from a process that did its imports earlier.

Health is a ``GET`` of ``Kind.health_path``: one that never answers in time is killed,
one that stops answering leaves the rotation and, if it stays silent, is killed; a death
before the first answer backs off before the next start. ``retire`` then ``drain`` end it:
SIGTERM (it finishes what it holds), SIGKILL after a grace, and the directory goes.
"""

import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import httpx

from naiad.executors.supervisor.workdir import proc_alive, read_json, write_json_atomic

GUARD_MODULE = "naiad.server.managed.orphans"

if TYPE_CHECKING:
    from naiad.server.managed.standby import Standby

log = logging.getLogger("naiad.managed")

MAX_LOG_BYTES = 8 * 1024 * 1024  # rotated to <log>.1 at a start past this size
LOG_TAIL_CHARS = 1500
_STARTING = "--- starting on port"


def first_start(log_text: str) -> float | None:
    """The wall-clock time (epoch seconds) of the first start a log records, or None."""
    if not log_text.startswith(_STARTING):
        return None
    stamp = log_text.split("\n", 1)[0].rsplit(" at ", 1)[-1]
    try:
        return time.mktime(time.strptime(stamp, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return None


def _log_start(out: BinaryIO, port: int) -> None:
    """The line each start begins with in the log (``first_start`` and ``log_tail`` read it)."""
    out.write(f"{_STARTING} {port} at {time.strftime('%Y-%m-%dT%H:%M:%S')}\n".encode())
    out.flush()


@dataclass(frozen=True)
class Kind:
    """What one kind of managed process is called and how it is recognised."""

    noun: str  # "replica": in sentences and logs
    module: str  # the ``python -m`` module its command line holds
    record_file: str
    log_file: str
    health_path: str = "/ping"
    standby_module: str | None = None  # the module of one waiting with its imports done

    @property
    def modules(self) -> tuple[str, ...]:
        """What its command line may run: the module, or the standby that became it."""
        return (self.module,) if self.standby_module is None else (self.module, self.standby_module)


@dataclass(frozen=True)
class Policy:
    """How long a process may take to start, to drain, and to be silent."""

    start_timeout_s: float
    stop_grace_s: float
    ping_failures: int = 3  # missed health checks in a row before it leaves the rotation
    unhealthy_restart_s: float = 30.0  # one that stays unhealthy this long is restarted
    retire_delay_s: float = 0.5  # between leaving the rotation and SIGTERM
    backoff_s: float = 0.5  # after a failed start; doubled per failure in a row
    max_backoff_s: float = 30.0

    def backoff(self, failed_starts: int) -> float:
        return min(self.max_backoff_s, self.backoff_s * 2 ** (failed_starts - 1))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def send(pid: int, sig: signal.Signals) -> None:
    """Signal the process group (it leads its own session); gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def owns(root: Path, kind: Kind, pid: int, port: int) -> bool:
    """Whether ``pid`` is alive and is this directory's process of ``kind`` on ``port``."""
    if not proc_alive(pid):
        return False
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return False
    here = os.path.realpath(root)
    if cwd not in (here, f"{here} (deleted)") or not any(m.encode() in args for m in kind.modules):
        return False
    try:
        return args[args.index(b"--port") + 1] == str(port).encode()
    except (ValueError, IndexError):
        return False


def find(root: Path, kind: Kind) -> tuple[int, int] | None:
    """(pid, port) of the process a previous server started in ``root``, if it still runs."""
    record = read_json(root / kind.record_file)
    if not record:
        return None
    pid, port = record.get("pid"), record.get("port")
    if isinstance(pid, int) and isinstance(port, int) and owns(root, kind, pid, port):
        return pid, port
    return None


@dataclass(eq=False, kw_only=True)
class ManagedProcess:
    """One process as the server knows it: where it lives, whether it serves, its history."""

    root: Path
    kind: Kind
    pid: int | None = None
    port: int | None = None
    child: subprocess.Popen[bytes] | None = None
    launched: bool = False  # started at least once (by us or by a previous server)
    healthy: bool = False
    ever_healthy: bool = False  # since its last start
    restarts: int = 0
    failed_starts: int = 0
    started_at: float = 0.0
    ping_failures: int = 0
    unhealthy_since: float | None = None
    timed_out: bool = False
    retry_at: float = 0.0
    failure: str | None = None
    retire_at: float | None = None
    term_sent_at: float | None = None
    python: str | None = None  # the interpreter it runs under (default: the server's)
    env: dict[str, str] | None = None  # its whole environment (default: the server's)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def label(self) -> str:
        return self.root.name

    @property
    def who(self) -> str:
        """How logs name it."""
        return f"{self.kind.noun} {self.label}"

    @property
    def log_path(self) -> Path:
        return self.root / self.kind.log_file

    def alive(self) -> bool:
        if self.pid is None or self.port is None:
            return False
        if self.child is not None:
            return self.child.poll() is None  # also reaps it
        return owns(self.root, self.kind, self.pid, self.port)

    def start(self, args: Callable[[int], list[str]], standby: "Standby | None" = None) -> None:
        """Start ``python -m MODULE args(port)`` detached, on a free loopback port or, when
        ``standby`` has one waiting with its imports done, on that one's port and process;
        its pid and port are on disk when this returns. A start after the first counts in
        ``restarts``."""
        if self.launched:
            self.restarts += 1
        self.root.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            if self.log_path.stat().st_size > MAX_LOG_BYTES:
                self.log_path.replace(self.root / f"{self.kind.log_file}.1")
        with open(self.log_path, "ab") as out:
            warm = self._warm(out, args, standby) if standby is not None else None
            child, port = warm or self._cold(out, args)
        record = {"pid": child.pid, "port": port, "restarts": self.restarts}
        write_json_atomic(self.root / self.kind.record_file, record | {"started_at": time.time()})
        self.child, self.pid, self.port = child, child.pid, port
        self.launched = True
        self.healthy = self.ever_healthy = self.timed_out = False
        self.started_at = time.monotonic()
        self.ping_failures, self.unhealthy_since = 0, None

    def _warm(
        self, out: BinaryIO, args: Callable[[int], list[str]], standby: "Standby"
    ) -> tuple[subprocess.Popen[bytes], int] | None:
        """The standby's process, handed this start, when one is ready."""
        taken = standby.take()
        if taken is None:
            return None
        child, port = taken
        _log_start(out, port)
        if not standby.hand_over(child, self.root, self.log_path, args(port)):
            return None
        return child, port

    def _cold(
        self, out: BinaryIO, args: Callable[[int], list[str]]
    ) -> tuple[subprocess.Popen[bytes], int]:
        port = free_port()
        _log_start(out, port)
        child = subprocess.Popen(
            [self.python or sys.executable, "-m", self.kind.module, *args(port)],
            cwd=self.root,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a signal to the server's group never reaches it
            close_fds=True,
        )
        return child, port

    def guard(self, home: Path, grace_s: float) -> None:
        """Start this process's orphan guard (``managed.orphans``) unless one watches it."""
        if self.pid is None:
            return
        record_file = self.root / self.kind.record_file
        record = read_json(record_file) or {}
        guard = record.get("guard") or []  # [guard pid, the pid it watches]
        if guard[1:] == [self.pid] and isinstance(guard[0], int) and proc_alive(guard[0]):
            return  # the guard an earlier server started still watches it
        argv = [str(home), str(self.root), str(self.pid), str(grace_s)]
        with open(self.log_path, "ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", GUARD_MODULE, *argv],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # it must outlive this server
                close_fds=True,
            )
        write_json_atomic(record_file, record | {"guard": [process.pid, self.pid]})

    def reattach(self) -> bool:
        """Take up the process a previous server left in ``root``, if it still runs."""
        record = read_json(self.root / self.kind.record_file) or {}
        self.launched = True
        self.restarts = int(record.get("restarts") or 0)
        found = find(self.root, self.kind)
        if found is None:
            return False
        self.pid, self.port = found
        self.started_at = time.monotonic()
        return True

    def signal(self, sig: signal.Signals) -> None:
        if self.pid is not None:
            send(self.pid, sig)

    def ping(self, http: httpx.Client) -> bool:
        try:
            return http.get(f"{self.url}{self.kind.health_path}").status_code == 200
        except httpx.HTTPError:
            return False

    def pinged(self, ok: bool, now: float, policy: Policy) -> None:
        """Take in one health check's answer."""
        if ok:
            self.healthy = self.ever_healthy = True
            self.failed_starts = self.ping_failures = 0
            self.unhealthy_since = None
            return
        if not self.ever_healthy:
            if now - self.started_at > policy.start_timeout_s and not self.timed_out:
                log.warning(
                    "%s did not answer %s in %ss; stopping it",
                    self.who,
                    self.kind.health_path,
                    policy.start_timeout_s,
                )
                self.timed_out = True
                send(self.pid or 0, signal.SIGKILL)
            return
        self.ping_failures += 1
        if self.ping_failures >= policy.ping_failures:
            self.healthy = False
            self.unhealthy_since = self.unhealthy_since or now
            if now - self.unhealthy_since > policy.unhealthy_restart_s:
                log.warning("%s stopped answering; restarting it", self.who)
                send(self.pid or 0, signal.SIGKILL)

    def died(self, now: float, policy: Policy) -> None:
        """It is gone: start again now if it had served, after a back-off if it never did
        (``failure`` then says why, with the end of its log)."""
        code = self.child.returncode if self.child is not None else None
        self.pid = self.child = None
        self.healthy = False
        if self.retire_at is not None:
            return
        if self.ever_healthy:
            self.retry_at = now
            log.warning("%s exited (code %s); restarting it", self.who, code)
            return
        self.failed_starts += 1
        self.retry_at = now + policy.backoff(self.failed_starts)
        health = self.kind.health_path
        why = (
            f"did not answer {health} within {policy.start_timeout_s:g}s and was stopped"
            if self.timed_out
            else f"exited before it answered {health}"
            + (f" (exit code {code})" if code is not None else "")
        )
        title = f"{self.kind.noun.capitalize()} {self.label} {why}"
        tail = self.log_tail()
        self.failure = (
            f"{title}; the end of {self.log_path}:\n{tail}"
            if tail
            else f"{title}; its log {self.log_path} is empty."
        )

    def retire(self, policy: Policy) -> None:
        """Out of the rotation now; SIGTERM (drain) shortly; SIGKILL after the grace."""
        self.retire_at = time.monotonic() + (policy.retire_delay_s if self.healthy else 0.0)
        self.healthy = False

    def drain(self, now: float, policy: Policy) -> bool:
        """Move a retiring process on; True once it is gone (its directory is not, yet)."""
        if self.pid is None or not self.alive():
            return True
        if self.term_sent_at is None and self.retire_at is not None and now >= self.retire_at:
            send(self.pid, signal.SIGTERM)
            self.term_sent_at = now
        elif self.term_sent_at is not None and now - self.term_sent_at > policy.stop_grace_s:
            send(self.pid, signal.SIGKILL)
        return False

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        """The last lines of its log (since its last start), for failure reasons."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - chars))
                text = f.read().decode(errors="replace")
        except OSError:
            return ""
        cut = text.rfind(_STARTING)
        if cut >= 0:
            text = text[cut:].split("\n", 1)[-1]
        return text.strip()

    def log_head(self, max_bytes: int) -> str:
        """Its log from the beginning (every start since the last rotation), at most
        ``max_bytes`` of it."""
        try:
            with open(self.log_path, "rb") as f:
                return f.read(max_bytes).decode(errors="replace")
        except OSError:
            return ""

    def remove(self, parents: int = 0) -> None:
        """Delete its directory, and up to ``parents`` levels above once they are empty."""
        shutil.rmtree(self.root, ignore_errors=True)
        for parent in list(self.root.parents)[:parents]:
            with contextlib.suppress(OSError):
                parent.rmdir()
