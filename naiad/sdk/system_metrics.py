"""Optional system metrics (CPU, memory; GPU when torch already uses CUDA), sampled in a thread."""

import contextlib
import sys
import threading
from collections.abc import Callable, Mapping

Log = Callable[[Mapping[str, float]], None]


def sample() -> dict[str, float]:
    import psutil

    memory = psutil.virtual_memory()
    values = {
        "system/cpu_percent": psutil.cpu_percent(interval=None),
        "system/memory_percent": memory.percent,
        "system/memory_used_gb": (memory.total - memory.available) / 1e9,
    }
    torch = sys.modules.get("torch")  # never import torch just to look for a GPU
    if torch is not None and torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(i)
            values[f"system/gpu{i}_memory_used_gb"] = (total - free) / 1e9
            with contextlib.suppress(Exception):  # needs pynvml; memory alone still helps
                values[f"system/gpu{i}_utilization"] = float(torch.cuda.utilization(i))
    return values


class SystemMonitor:
    def __init__(self, log: Log, interval: float = 10.0) -> None:
        self._log = log
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="naiad-system", daemon=True)

    def start(self) -> "SystemMonitor":
        import psutil

        psutil.cpu_percent(interval=None)  # the first call only primes the counter
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._log(sample())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
