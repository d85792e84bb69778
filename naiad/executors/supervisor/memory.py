"""A job's memory limit (``memory_mb``): each host's process tree, measured a few times a
second; past the limit the attempt ends with OutOfMemory instead of the kernel killing a
process with no word of why (or the machine swapping).

Memory is the proportional set size (PSS, from ``/proc/PID/smaps_rollup``): a page that
N processes share counts 1/N in each. Processes forked from the warm standby, or by
torchrun, share torch's libraries, and resident sizes (RSS) would count those N times.
Where smaps_rollup is missing (kernels before 4.14), RSS stands in.
"""

import contextlib
import time

import psutil

CHECK_EVERY_S = 0.25


def _pss_kb(process: psutil.Process) -> int:
    with contextlib.suppress(OSError, ValueError), open(f"/proc/{process.pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    with contextlib.suppress(psutil.Error):
        return int(process.memory_info().rss // 1024)
    return 0


def tree_mb(pid: int) -> float:
    """The memory of ``pid`` and every process below it, in MiB; 0 once it is gone."""
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    return sum(_pss_kb(p) for p in tree) / 1024


class MemoryWatch:
    """Says when a host's tree has gone past ``limit_mb`` (checked every CHECK_EVERY_S)."""

    def __init__(self, limit_mb: int | None) -> None:
        self.limit_mb = limit_mb
        self.next_check = 0.0
        self.peak_mb = 0.0

    def over(self, pids: list[int]) -> tuple[int, float] | None:
        """``(index of the host, its memory in MiB)`` for the first host over the limit."""
        if self.limit_mb is None or time.monotonic() < self.next_check:
            return None
        self.next_check = time.monotonic() + CHECK_EVERY_S
        for index, pid in enumerate(pids):
            used = tree_mb(pid)
            self.peak_mb = max(self.peak_mb, used)
            if used > self.limit_mb:
                return index, used
        return None


def out_of_memory(used_mb: float, limit_mb: int, host: str | None) -> str:
    where = f" on {host}" if host else ""
    return (
        f"OutOfMemory: the job's processes{where} used {used_mb:,.0f} MiB, over its memory "
        f"limit of {limit_mb:,} MiB (memory_mb), and were ended. Give it more memory "
        "(memory_mb), or use less: a smaller batch, fewer DataLoader workers, or data "
        "streamed instead of loaded whole."
    )
