"""Forking a job's script from a supervisor that has already imported torch (warm starts).

A single-process attempt run with the supervisor's own Python is forked instead of
started afresh: same directory (``code/``), variables, session and log as a cold start,
and it dies with the supervisor as a cold start does.
"""

import atexit
import contextlib
import os
import runpy
import signal
import sys
import traceback
from pathlib import Path

from naiad.executors.supervisor.launch import die_with_parent


class ForkedProcess:
    """The subset of ``subprocess.Popen`` the supervisor uses, for a forked child."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def _collect(self, flags: int) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, flags)
            except ChildProcessError:
                return self.returncode
            if pid == self.pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def poll(self) -> int | None:
        return self._collect(os.WNOHANG)

    def wait(self) -> int:
        code = self._collect(0)
        assert code is not None
        return code


def _run_script(cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> int:
    """In the child: become what ``python script args`` in ``cwd`` with ``env`` would be."""
    os.setsid()
    os.chdir(cwd)
    out = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.environ.clear()
    os.environ.update(env)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    script = cmd[1]
    sys.argv = cmd[1:]
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    threads = env.get("OMP_NUM_THREADS", "")
    if "torch" in sys.modules and threads.isascii() and threads.isdigit():
        sys.modules["torch"].set_num_threads(int(threads))  # read at import
    code = 0
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:  # as the interpreter treats sys.exit(x)
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()  # the SDK flushes its runs here
    with contextlib.suppress(BaseException):
        sys.stdout.flush()
        sys.stderr.flush()
    return code


def fork_script(cmd: list[str], env: dict[str, str], cwd: Path, log: Path) -> ForkedProcess:
    """Fork a child that runs ``cmd`` (``[python, script, *args]``) as ``launch.start`` would."""
    sys.stdout.flush()
    sys.stderr.flush()
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            die_with_parent(parent)
            code = _run_script(cmd, env, cwd, log)
        finally:
            os._exit(code)
    return ForkedProcess(pid)


def can_fork(python: str, procs: int) -> bool:
    """Only a single process on this very interpreter can start from what it imported."""
    return procs == 1 and python == sys.executable and "torch" in sys.modules
