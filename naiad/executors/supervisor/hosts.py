"""A job's hosts, ``algo-1`` .. ``algo-N``: SageMaker's instances, emulated on this machine.

A job asking for N nodes runs as N hosts, each its own process tree (its script, or its
torchrun agent and workers) started by the one supervisor, with its own ``input/``,
``model/`` and ``output/`` (``WorkDir.for_host``) and its own ``current_host``. The first
host writes to the job log as a single-host job does; every other host's output is read
from a pipe and written there line by line behind ``[algo-N] ``, so the log interleaves
the hosts and still says which line came from where. A job with one node is one host
laid out at the root of its directory, exactly as before hosts existed.
"""

import contextlib
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from naiad.executors.base import LaunchSpec
from naiad.executors.supervisor import launch
from naiad.executors.supervisor.workdir import WorkDir

# What the supervisor puts before a line of a host other than the first.
HOST_PREFIX = re.compile(r"\[(algo-\d+)\] ")
MAX_LINE_BYTES = 64 * 1024  # a longer line is written in pieces, each prefixed
PUMP_JOIN_S = 5.0


@dataclass(frozen=True)
class Host:
    name: str  # algo-1, algo-2, ...
    rank: int  # the node rank: 0 for algo-1
    wd: WorkDir  # this host's view of the job's directory

    @property
    def first(self) -> bool:
        return self.rank == 0


def hosts_of(spec: LaunchSpec, wd: WorkDir) -> list[Host]:
    """One host at the root for one node, or for a gang's host (its own machine); else
    ``hosts/algo-N/`` for each."""
    if spec.gang is not None:
        return [Host(spec.gang.host, spec.gang.rank, wd)]
    names = spec.host_names()
    if len(names) == 1:
        return [Host(names[0], 0, wd)]
    return [Host(name, rank, wd.for_host(name)) for rank, name in enumerate(names)]


def host_text(text: str, host: Host) -> str:
    """The lines of ``text`` (part of the job log) that ``host`` wrote, without its prefix."""
    lines = []
    for line in text.splitlines(True):
        match = HOST_PREFIX.match(line)
        if match is None:
            if host.first:
                lines.append(line)
        elif match[1] == host.name:
            lines.append(line[match.end() :])
    return "".join(lines)


def pump_lines(source: IO[bytes], log: Path, prefix: bytes) -> None:
    """Copy ``source`` into the job log line by line, each line behind ``prefix``."""
    with source:
        out: IO[bytes] | None = None
        with contextlib.suppress(OSError):
            out = open(log, "ab", buffering=0)  # noqa: SIM115 - closed below, may fail mid-way
        while line := source.readline(MAX_LINE_BYTES):
            if out is None:
                continue  # keep draining: a host blocked on a full pipe would never end
            try:
                out.write(prefix + (line if line.endswith(b"\n") else line + b"\n"))
            except OSError:  # the disk is full or the log is gone: drop, never stall
                out.close()
                out = None
        if out is not None:
            out.close()


@dataclass
class HostGroup:
    """One attempt's process trees, one per host, watched and ended together."""

    hosts: Sequence[Host]
    log: Path  # the job log, where a piped host's lines go
    procs: list[launch.Process] = field(default_factory=list)
    pumps: list[threading.Thread] = field(default_factory=list)

    def add(self, host: Host, proc: launch.Process, output: IO[bytes] | None = None) -> None:
        """``proc`` is ``host``'s; ``output`` its piped output, for a host after the first."""
        self.procs.append(proc)
        if output is not None:
            pump = threading.Thread(
                target=pump_lines,
                args=(output, self.log, f"[{host.name}] ".encode()),
                name=f"naiad-log-{host.name}",
                daemon=True,
            )
            pump.start()
            self.pumps.append(pump)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    @property
    def returncode(self) -> int | None:
        """The first host's exit code (what a stop reports)."""
        return self.procs[0].returncode if self.procs else None

    def running(self) -> bool:
        return any(p.returncode is None for p in self.procs)

    def poll(self) -> tuple[int, Host | None] | None:
        """None while the attempt runs; then ``(0, None)`` once every host exited 0, or the
        exit code of the first host found failed, and that host. A failed host ends the
        attempt at once: the caller ends the others."""
        codes = [p.poll() for p in self.procs]
        for host, code in zip(self.hosts, codes, strict=False):
            if code is not None and code != 0:
                return code, host
        if all(code == 0 for code in codes):
            return 0, None
        return None

    def tick(self) -> None:
        """Between polls: collect exited orphans (ElasticGroup also keeps its hosts up)."""
        launch.reap_orphans(self.pids)

    def end(self, grace_s: float) -> None:
        """End every host's tree (SIGTERM, then SIGKILL after ``grace_s``), then let the
        pipes drain into the log."""
        if self.procs:
            launch.end_all(self.procs, grace_s)
        for pump in self.pumps:
            pump.join(PUMP_JOIN_S)
        self.pumps = [p for p in self.pumps if p.is_alive()]

    def kill(self) -> None:
        """After the supervisor failed: SIGKILL whatever still runs, without waiting long."""
        with contextlib.suppress(Exception):
            if self.running():
                self.end(0)
