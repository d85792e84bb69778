"""An elastic job's worker as torchrun starts it: it dies with its agent, then runs the
script (``elastic_worker.py SCRIPT ARGS...``).

torchrun gives its workers sessions of their own and nothing ties them to it, so when a
host's agent is killed (its machine or Ray node lost) its workers would live on and keep
training in a world the others have left. Run by path with the job's Python, before the
script imports anything; the script runs as ``__main__`` with its own ``sys.argv``.
"""

import ctypes
import os
import runpy
import signal
import sys

PR_SET_PDEATHSIG = 1

if __name__ == "__main__":
    agent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != agent:  # the agent died before the signal was armed
        os.kill(os.getpid(), signal.SIGKILL)
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    runpy.run_path(script, run_name="__main__")
