"""System metrics: sampled values are numbers under system/, logged on an interval."""

import threading

from naiad.sdk.system_metrics import SystemMonitor, sample


def test_sample_has_cpu_and_memory() -> None:
    values = sample()
    assert {"system/cpu_percent", "system/memory_percent", "system/memory_used_gb"} <= set(values)
    assert all(isinstance(v, float) for v in values.values())
    assert 0 <= values["system/memory_percent"] <= 100


def test_monitor_logs_until_stopped() -> None:
    logged: list[dict[str, float]] = []
    seen = threading.Event()

    def log(values) -> None:  # type: ignore[no-untyped-def]
        logged.append(dict(values))
        seen.set()

    monitor = SystemMonitor(log, interval=0.01).start()
    assert seen.wait(5)
    monitor.stop()
    count = len(logged)
    assert count >= 1 and "system/cpu_percent" in logged[0]
    seen.clear()
    assert not seen.wait(0.05) and len(logged) == count
