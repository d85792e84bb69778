"""Warm starts: a standby that has already imported torch forks each job's supervisor.

Importing torch and the ``torch._dynamo`` that its optimizers load takes seconds, which
a job would otherwise pay before its first step. The local executor keeps one standby
(``python -m naiad.executors.supervisor.warm``) that imports them, says ``ready`` on
stdout, then reads a job's directory per line on stdin. For each it forks a child that
becomes that job's supervisor, in a session of its own, and answers the child's pid;
a single-process attempt run with the server's Python is forked in turn from that
supervisor instead of started afresh: same directory (``code/``), variables, session
and log as a cold start, and it dies with the supervisor as a cold start does. So every
job starts warm, however many start at once. When stdin closes (the server went away),
the standby exits; the supervisors it forked go on, as a cold start's do.
"""

import contextlib
import os
import signal
import sys
import traceback
from pathlib import Path

from naiad.executors.supervisor.main import main as run_supervisor

# What most jobs import first; each that is installed is imported once, here.
PRELOAD = (
    "numpy",
    "torch",
    "torch._dynamo",  # torch.optim loads it on the first optimizer: seconds
    "torch.distributed",
    "sklearn.datasets",
    "naiad.runtime",
    "naiad.sdk.run",
)


def _supervise(root: Path) -> int:
    """In the forked child: become the job's supervisor, detached from the standby."""
    os.setsid()  # its own session, as a cold start's: a signal to the standby never reaches it
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # it waits for its own children
    log = os.open(root / "supervisor.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.chdir("/")
    return run_supervisor([str(root)], warm=True)


def main() -> int:
    for module in PRELOAD:
        with contextlib.suppress(Exception):
            __import__(module)
    # The supervisors forked here are reaped by the kernel: no zombie waits on the standby.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    print("ready", flush=True)
    for line in sys.stdin:  # one job directory per line, until the executor goes away
        root = Path(line.strip())
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _supervise(root)
            except BaseException:
                traceback.print_exc()  # into the job's supervisor.log
            finally:
                os._exit(code)
        print(pid, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
