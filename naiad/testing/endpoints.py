"""Building blocks for endpoint tests: tiny models, steady load through the proxy, cleanup."""

import contextlib
import json
import os
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from naiad.core.home import HomeLayout

if TYPE_CHECKING:
    import torch


def scale_model(directory: Path, factor: float, width: int = 4) -> Path:
    """A TorchScript model answering ``x * factor`` for float32 rows of ``width``: which
    version answered is in every prediction."""
    import torch

    from naiad.runtime.models import save_model

    class Scale(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.factor = factor

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * self.factor

    return save_model(Scale(), torch.ones(2, width), directory)


def digits_network() -> "torch.nn.Module":
    """The digits CNN of the examples and benchmarks (conv 1->16, conv 16->32, linear 512 ->
    10 on [N, 1, 8, 8]), untrained, in eval mode."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 16, 3),
        nn.ReLU(),
        nn.Conv2d(16, 32, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 10),
    ).eval()


def digits_model(directory: Path) -> Path:
    """``digits_network`` saved as a version: what a cold start loads, for timing it."""
    import torch

    from naiad.runtime.models import save_model

    return save_model(digits_network(), torch.zeros(2, 1, 8, 8), directory)


def broken_model(directory: Path, width: int = 4) -> Path:
    """A model directory whose manifest is fine but whose file is not a model."""
    scale_model(directory, 1.0, width)
    (directory / "model.pt").write_bytes(b"not a torchscript archive")
    return directory


def replica_pids(home: Path) -> list[int]:
    """Live replica processes started under ``home`` (checked in /proc, like the keeper)."""
    from naiad.server.managed.replicas import REPLICA, live_replica

    found = []
    for record in HomeLayout(home).endpoints.glob(f"*/*/*/{REPLICA.record_file}"):
        live = live_replica(record.parent)
        if live is not None:
            found.append(live[0])
    return found


def kill_replicas(home: Path, timeout: float = 10.0) -> None:
    """SIGKILL every replica still running under ``home``, by pid, and wait for them."""
    pids = replica_pids(home)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while replica_pids(home) and time.monotonic() < deadline:
        time.sleep(0.05)


@dataclass
class Load:
    """Threads sending requests through the server's proxy back to back until stopped.

    Every answer is kept as (status, variant, first prediction); transport errors too."""

    url: str
    token: str
    endpoint: str
    threads: int = 4
    answers: list[tuple[int, str, float | None]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _run(self) -> None:
        headers = {"authorization": f"Bearer {self.token}", "content-type": "application/json"}
        body = json.dumps({"inputs": [[1.0, 1.0, 1.0, 1.0]]})
        target = f"{self.url}/endpoints/{self.endpoint}/invocations"
        with httpx.Client(timeout=30, headers=headers) as client:
            while not self._stop.is_set():
                try:
                    response = client.post(target, content=body)
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.failures.append(repr(exc))
                    continue
                value = None
                if response.status_code == 200:
                    value = response.json()["predictions"][0][0]
                else:
                    with self._lock:
                        self.failures.append(f"{response.status_code}: {response.text[:300]}")
                variant = response.headers.get("x-naiad-variant", "")
                with self._lock:
                    self.answers.append((response.status_code, variant, value))

    def start(self) -> "Load":
        for i in range(self.threads):
            worker = threading.Thread(target=self._run, name=f"load-{i}", daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def stop(self) -> "Load":
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=60)
        return self

    def count(self) -> int:
        with self._lock:
            return len(self.answers)

    def wait_for(self, n: int, timeout: float = 30.0) -> None:
        """Until ``n`` more answers have come back."""
        target = self.count() + n
        deadline = time.monotonic() + timeout
        while self.count() < target:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {self.count()} answers of {target} in {timeout}s")
            time.sleep(0.02)

    def statuses(self) -> Counter[int]:
        with self._lock:
            return Counter(status for status, _, _ in self.answers)

    def since(self, index: int) -> list[tuple[int, str, float | None]]:
        with self._lock:
            return self.answers[index:]
