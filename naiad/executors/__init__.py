"""Where jobs run. This version ships one executor, ``local``: each job's processes on the
server's own machine. Only the server imports this."""

from pathlib import Path

from naiad.core.errors import InvalidInput
from naiad.executors.base import Executor

KINDS = ("local",)


def open_executor(kind: str, root: Path, warm: bool = False) -> Executor:
    """The executor named by NAIAD_EXECUTOR, imported only when chosen; ``root`` is the
    folder that holds its jobs' directories. Nothing starts until ``open()``."""
    if kind == "local":
        from naiad.executors.local import LocalExecutor

        return LocalExecutor(root, warm=warm)
    known = " or ".join(repr(k) for k in KINDS)
    raise InvalidInput(f"NAIAD_EXECUTOR={kind!r} is not available in this version; use {known}.")
