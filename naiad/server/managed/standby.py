"""A process started ahead of need, its imports done, handed its work later: what lets a
replica that scales from zero answer in a fraction of a second instead of after the second
or two importing torch takes (jobs have the same, ``executors/supervisor/warm.py``).

``python -m STANDBY_MODULE --port N`` holds port N (bound, not listening, so nothing else
takes it), imports what the real process needs, prints ``ready`` and waits on stdin. Handed
one JSON line (``{"cwd", "log", "args"}``) it moves into the slot's directory, writes its
output to the log, lets go of the port and runs the real module's main with ``args``: from
then on it is that process (same pid, its own session), and a restarted server recognises
it by its command line (the standby module and ``--port N``) and working directory. When
stdin closes with nothing handed over (the server went away), it exits.
"""

import contextlib
import json
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from naiad.server.managed.process import Kind, free_port, send

REFILL_DELAY_S = 3.0  # after a hand-over, so the next one's imports don't slow that start


class Standby:
    """At most one waiting process of ``kind``; the keeper thread asks it for one."""

    def __init__(self, kind: Kind, refill_delay_s: float = REFILL_DELAY_S) -> None:
        assert kind.standby_module is not None, f"a {kind.noun} has no standby module"
        self.kind = kind
        self.module = kind.standby_module
        self.refill_delay_s = refill_delay_s
        self._child: subprocess.Popen[bytes] | None = None
        self._port = 0
        self._ready = False
        self._refill_at = 0.0

    def keep(self, wanted: bool, now: float) -> None:
        """Have one waiting while ``wanted`` (a while after the last was taken); none else."""
        if self._child is not None and self._child.poll() is not None:
            self._forget()  # it died (its port was taken, say): another one, next time
        if not wanted:
            self.close()
        elif self._child is None and now >= self._refill_at:
            self._spawn()

    def _spawn(self) -> None:
        self._port = free_port()
        self._ready = False
        self._child = subprocess.Popen(
            [sys.executable, "-m", self.module, "--port", str(self._port)],
            cwd="/",
            stdin=subprocess.PIPE,  # closed by us, or by our death: then it exits
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )

    def ready(self) -> bool:
        """Whether one waits with its imports done (it has said ``ready``)."""
        child = self._child
        if child is None or child.poll() is not None or child.stdout is None:
            return False
        if not self._ready and select.select([child.stdout], [], [], 0)[0]:
            self._ready = child.stdout.readline().strip() == b"ready"
        return self._ready

    def take(self) -> tuple[subprocess.Popen[bytes], int] | None:
        """The waiting process and the port it holds, when it is ready; the caller's now."""
        if not self.ready():
            return None
        assert self._child is not None
        taken = self._child, self._port
        self._child = None
        self._refill_at = time.monotonic() + self.refill_delay_s
        return taken

    @staticmethod
    def hand_over(child: subprocess.Popen[bytes], cwd: Path, log: Path, args: list[str]) -> bool:
        """Make the taken process the one ``args`` describe; False when it is gone already."""
        order = json.dumps({"cwd": str(cwd), "log": str(log), "args": args}) + "\n"
        assert child.stdin is not None and child.stdout is not None
        try:
            child.stdin.write(order.encode())
            child.stdin.close()
        except OSError:
            send(child.pid, signal.SIGKILL)
            child.wait()
            return False
        finally:
            child.stdout.close()
        return True

    def _forget(self) -> None:
        child, self._child = self._child, None
        if child is not None:
            for pipe in (child.stdin, child.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()

    def close(self) -> None:
        """End the waiting one, if any (a handed-over one is no longer ours)."""
        child = self._child
        if child is not None:
            send(child.pid, signal.SIGKILL)
            child.wait()
        self._forget()
