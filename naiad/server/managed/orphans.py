"""The guard beside each managed process (an endpoint replica, a notebook server).

Such processes outlive their server on purpose: a restarted server re-attaches to them,
and endpoints keep answering meanwhile. Without a server they would run forever, so each
has a guard, a small process of its own that checks every few seconds and ends it (its
whole process group, SIGTERM, then SIGKILL) when:

- its directory is gone (the home was deleted): at once;
- no server has held the home's lock for ``grace_s`` (the server was stopped for good,
  or uninstalled): then. A server that starts within the grace re-attaches it, and the
  clock starts again.

The guard ends when its process does. It never holds the home's lock for more than the
instant a probe takes (a starting server waits that instant out).

    python -m naiad.server.managed.orphans HOME ROOT PID GRACE_S
"""

import contextlib
import os
import signal
import sys
import time
from pathlib import Path

from naiad.executors.supervisor.workdir import proc_alive, start_time
from naiad.sdk.local_server import home_locked

CHECK_S = 1.0
TERM_GRACE_S = 10.0


def _end(pid: int, why: str) -> None:
    print(f"[naiad] ending process {pid}: {why}", file=sys.stderr, flush=True)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + TERM_GRACE_S
    while proc_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def watch(home: Path, root: Path, pid: int, grace_s: float) -> str:
    """Guard ``pid`` until it ends or is ended; returns what happened."""
    born = start_time(pid)
    seen = time.monotonic()
    while True:
        if not proc_alive(pid) or start_time(pid) != born:
            return "it ended"
        if not root.is_dir():
            _end(pid, f"its directory {root} was deleted")
            return "its directory was deleted"
        now = time.monotonic()
        if home_locked(home):  # a server holds the home's lock for its whole life
            seen = now
        elif now - seen >= grace_s:
            _end(pid, f"no Naiad server has kept the home {home} for {grace_s:g} s")
            return "its server was gone"
        time.sleep(CHECK_S)


def main(argv: list[str] | None = None) -> None:
    home, root, pid, grace = argv if argv is not None else sys.argv[1:]
    watch(Path(home), Path(root), int(pid), float(grace))


if __name__ == "__main__":
    main()
