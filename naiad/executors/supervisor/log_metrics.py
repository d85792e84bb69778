"""Metrics read from the job's log, as SageMaker's ``MetricDefinitions`` read them.

A plain SageMaker script prints its metrics (``loss: 0.5``) instead of logging them;
each definition (a name and a regex with one group) says how to find one of them. A
thread of the supervisor reads what the log gained about once a second, turns every
match into a point of the job's run (steps count up per metric, from 0), writes the
points as one batch to the job's metric spool, then sends its batches from there.

The spool is the one the SDK inside the job uses, so the server stores whatever could
not be sent when the job ends (``services.jobs.collect_spooled_metrics``). A batch's id
comes from the log offset it starts at, and ``log_metrics.json`` keeps the offset and
the next steps: a supervisor that starts again reads on from there, and a batch made
twice is stored once. Under torchrun only rank 0's lines count, as one process per
step, and of several hosts only the first's (``algo-1``, where rank 0 runs); the
platform's own ``[naiad]`` lines never do.
"""

import contextlib
import os
import re
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from naiad.core.home import HomeLayout
from naiad.executors.base import LaunchSpec
from naiad.executors.supervisor.hosts import HOST_PREFIX
from naiad.executors.supervisor.workdir import WorkDir, read_json, write_json_atomic
from naiad.schemas.metrics import encode_value

POLL_S = 1.0
MAX_POINTS = 10_000  # per batch; far below what the server takes in one request
READ_BYTES = 1024 * 1024
MAX_LINE = 10_000  # characters of one line that the regexes see
SEND_TIMEOUT_S = 5.0
STATE_FILE = "log_metrics.json"
_RANK = re.compile(r"\[rank(\d+)\] ?")


class LogMetrics:
    """Follows one job's log for its metric definitions; inert when it has none."""

    def __init__(self, spec: LaunchSpec, wd: WorkDir, log: Callable[[str], None]) -> None:
        self.spec, self.wd, self.log = spec, wd, log
        self.patterns = [(d["name"], re.compile(d["regex"])) for d in spec.metric_definitions]
        self.ranked = spec.processes_per_node > 1
        self.state_file = wd.root / STATE_FILE
        saved = read_json(self.state_file) or {}
        self.offset = int(saved.get("offset") or 0)
        self.steps: dict[str, int] = dict(saved.get("steps") or {})
        self.spool_dir = HomeLayout(wd.naiad_home).spool / spec.run_id
        self.lock = threading.Lock()  # held while reading or sending, and across a fork
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None
        self.transport: Any = None
        self.refused_said = False

    # -- reading --------------------------------------------------------------------------
    def _line(self, line: str, now: float, columns: dict[str, list[list[Any]]]) -> int:
        if line.startswith("[naiad] ") or HOST_PREFIX.match(line):
            return 0  # the platform's, or another host's than the first
        if self.ranked:
            rank = _RANK.match(line)
            if rank is None or rank[1] != "0":
                return 0
            line = line[rank.end() :]
        found = 0
        for name, pattern in self.patterns:
            match = pattern.search(line[:MAX_LINE])
            if match is None:
                continue
            try:
                value = float(match.group(1))
            except (TypeError, ValueError):
                continue  # the group caught something that is not a number
            step = self.steps.get(name, 0)
            self.steps[name] = step + 1
            steps, times, values = columns.setdefault(name, [[], [], []])
            steps.append(step)
            times.append(now)
            values.append(encode_value(value))
            found += 1
        return found

    def read(self, final: bool = False) -> int:
        """Turn the log's new whole lines (all of it when ``final``) into spooled batches."""
        total = 0
        while True:
            try:
                with open(self.wd.job_log, "rb") as f:
                    f.seek(self.offset)
                    data = f.read(READ_BYTES)
            except FileNotFoundError:
                return total
            whole = data.rfind(b"\n") + 1  # a line still being written waits
            if len(data) == READ_BYTES:
                data = data[: whole or READ_BYTES]  # a line longer than a read goes in parts
            elif not final:
                data = data[:whole]
            if not data:
                return total
            start, now, steps = self.offset, time.time(), dict(self.steps)
            columns: dict[str, list[list[Any]]] = {}
            used = points = 0
            for raw in data.splitlines(keepends=True):
                used += len(raw)
                text = raw.decode(errors="replace").rstrip("\r\n")
                points += self._line(text, now, columns)
                if points >= MAX_POINTS:
                    break
            try:
                if columns:
                    self._spool(f"log-{start}", columns)
            except OSError:
                self.steps = steps  # read again next time, with the same steps
                raise
            self.offset = start + used
            write_json_atomic(self.state_file, {"offset": self.offset, "steps": self.steps})
            total += points

    def _spool(self, batch_id: str, columns: dict[str, list[list[Any]]]) -> None:
        from naiad.sdk.spool import Spool

        batch = {
            "batch_id": batch_id,
            "metrics": {
                name: {"steps": s, "timestamps": t, "values": v}
                for name, (s, t, v) in columns.items()
            },
        }
        Spool(self.spool_dir.parent, self.spec.run_id).write(batch)

    # -- sending --------------------------------------------------------------------------
    def send(self, deadline: float | None = None) -> None:
        """Send this module's spooled batches in order; stop at the first that must wait."""
        if not self.spec.server_url:
            return
        from naiad.core.errors import NaiadError, ServerError, ServerUnreachable
        from naiad.sdk.http import Transport
        from naiad.sdk.spool import Spool

        if self.transport is None:
            self.transport = Transport(self.spec.server_url, self.spec.token, SEND_TIMEOUT_S)
        try:
            paths = sorted(self.spool_dir.glob("*-log-*.json"))
        except OSError:
            return
        for path in paths:
            if deadline is not None and time.monotonic() > deadline:
                return
            try:
                batch = Spool.read(path)
            except (OSError, ValueError):
                continue  # taken by another sender, or torn: the server's sweep decides
            try:
                self.transport.request("POST", f"/runs/{self.spec.run_id}/metrics", json=batch)
            except (ServerUnreachable, ServerError):
                return  # kept; tried again next time, or stored by the server at the end
            except NaiadError as exc:
                if not self.refused_said:
                    self.log(f"the server refused metrics read from the log: {exc.message}")
                    self.refused_said = True
            path.unlink(missing_ok=True)

    # -- the thread -----------------------------------------------------------------------
    def _loop(self) -> None:
        while not self.stop.wait(POLL_S):
            try:
                with self.lock:  # held for the read only: a fork waits for a read, not a send
                    self.read()
                self.send(deadline=time.monotonic() + SEND_TIMEOUT_S)
            except Exception:  # never let reading metrics take the job down
                traceback.print_exc()

    def start(self) -> "LogMetrics":
        if self.patterns and self.thread is None:
            # A warm start forks the job from this process: never in the middle of a read.
            os.register_at_fork(before=self.lock.acquire, after_in_parent=self.lock.release)
            self.thread = threading.Thread(target=self._loop, name="naiad-log-metrics")
            self.thread.daemon = True
            self.thread.start()
        return self

    def close(self) -> None:
        """Read the log to its end and send what can be sent in a few seconds."""
        if self.thread is None:
            return
        self.stop.set()
        self.thread.join(timeout=2 * SEND_TIMEOUT_S)  # a pathological regex never holds the job
        if self.thread.is_alive():
            self.log("reading metrics from the log took too long; the rest are not recorded")
            return
        try:
            self.read(final=True)
            self.send(deadline=time.monotonic() + SEND_TIMEOUT_S)
        except Exception:
            traceback.print_exc()
        if self.transport is not None:
            with contextlib.suppress(Exception):
                self.transport.http.close()


def start(spec: LaunchSpec, wd: WorkDir, log: Callable[[str], None]) -> LogMetrics:
    """Follow the job's log for its metric definitions until ``close()``."""
    return LogMetrics(spec, wd, log).start()
