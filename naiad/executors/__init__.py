"""Where jobs run: the local machine's processes, or a Ray cluster. Only the server imports this."""

from naiad.core.errors import InvalidInput
from naiad.executors.base import Executor


def open_executor(kind: str, warm: bool = False) -> Executor:
    """The executor named by NAIAD_EXECUTOR, imported only when chosen."""
    if kind == "local":
        from naiad.executors.local import LocalExecutor

        return LocalExecutor(warm=warm)
    raise InvalidInput(f"NAIAD_EXECUTOR={kind!r} is not available in this version; use 'local'.")
