"""Where jobs run: ``local`` (each job's processes on the server's own machine) or
``ray`` (each job a gang on a Ray cluster, ``pip install naiad[ray]``). Only the server
imports this."""

from pathlib import Path

from naiad.core.errors import InvalidInput
from naiad.executors.base import Executor

KINDS = ("local", "ray")


def check_executor(kind: str, ray_address: str = "auto") -> None:
    """Before the server starts: what the chosen executor needs is there (a sentence if not)."""
    if kind == "ray":
        from naiad.executors.ray.reach import check_reachable

        _need_ray()
        check_reachable(ray_address)


def _need_ray() -> None:
    try:
        import ray  # noqa: F401 - only to say what is missing, before anything starts
    except ImportError:
        raise InvalidInput(
            "NAIAD_EXECUTOR=ray needs Ray on the server and every node of the cluster: "
            "pip install 'naiad[ray]'."
        ) from None


def open_executor(kind: str, root: Path, warm: bool = False, ray_address: str = "auto") -> Executor:
    """The executor named by NAIAD_EXECUTOR, imported only when chosen; ``root`` is the
    folder that holds its jobs' directories. Nothing starts until ``open()``."""
    if kind == "local":
        from naiad.executors.local import LocalExecutor

        return LocalExecutor(root, warm=warm)
    if kind == "ray":
        _need_ray()
        from naiad.executors.ray.executor import RayExecutor

        return RayExecutor(root, ray_address)
    known = " or ".join(repr(k) for k in KINDS)
    raise InvalidInput(f"NAIAD_EXECUTOR={kind!r} is not available in this version; use {known}.")
