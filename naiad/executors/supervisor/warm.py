"""Warm starts: a standby supervisor that has already imported torch, forking the job.

Importing torch and the ``torch._dynamo`` that its optimizers load takes seconds, which
a job would otherwise pay before its first step. The local executor keeps one standby
(``python -m naiad.executors.supervisor.warm``) that imports them, says ``ready`` on
stdout and waits on stdin for a job's directory. Given one, it becomes that job's
supervisor, and a single-process attempt run with the server's Python is forked from
it instead of started afresh: same directory (``code/``), variables, session and log
as a cold start, and it dies with the supervisor as a cold start does. When stdin
closes without a job (the server went away), the standby exits.
"""

import contextlib
import os
import sys
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


def main() -> int:
    for module in PRELOAD:
        with contextlib.suppress(Exception):
            __import__(module)
    print("ready", flush=True)
    line = sys.stdin.readline().strip()
    if not line:
        return 0  # the executor went away before handing us a job
    root = Path(line)
    log = os.open(root / "supervisor.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.chdir("/")
    return run_supervisor([str(root)], warm=True)


if __name__ == "__main__":
    sys.exit(main())
