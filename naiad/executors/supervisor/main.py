"""The process that owns one job: ``python -m naiad.executors.supervisor.main <work_dir>``.

The entry point only: it marks the process as the job's, installs the signal handlers
and runs ``supervisor.Supervisor`` (a warm standby calls ``main`` with ``warm=True``).
"""

import os
import signal
import sys
from pathlib import Path

from naiad.executors.supervisor import launch
from naiad.executors.supervisor.supervisor import Supervisor
from naiad.executors.supervisor.workdir import JOB_DIR_ENV


def main(argv: list[str], warm: bool = False) -> int:
    if len(argv) != 1:
        print("usage: python -m naiad.executors.supervisor.main WORK_DIR", file=sys.stderr)
        return 2
    root = Path(os.path.realpath(argv[0]))
    os.environ[JOB_DIR_ENV] = str(root)  # marks all we start (pip too) as this job's
    supervisor = Supervisor(root, warm)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, supervisor.on_signal)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    launch.become_subreaper()
    supervisor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
