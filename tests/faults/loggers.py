"""Runs logging a metric in threads through the SDK, and the check that each of their
points was stored exactly once: the load the fault tests put on the server."""

import threading
import time

import numpy as np

import naiad


class Loggers:
    """``count`` runs, each logging ``points`` values of "x" (step == value) in a thread,
    pausing ``pause_s`` every 100 points."""

    def __init__(
        self, client: naiad.Client, experiment: str, count: int, points: int, pause_s: float
    ) -> None:
        self.client, self.points, self.pause_s = client, points, pause_s
        self.runs = [
            naiad.start_run(experiment=experiment, name=f"r{i}", client=client, flush_interval=0.1)
            for i in range(count)
        ]
        self.threads = [threading.Thread(target=self._log, args=(run,)) for run in self.runs]

    def _log(self, run: naiad.ActiveRun) -> None:
        for step in range(self.points):
            run.log_metric("x", float(step), step=step)
            if step % 100 == 99:
                time.sleep(self.pause_s)

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def finish(self) -> None:
        """Wait for every thread, then end the runs (their points flushed)."""
        for thread in self.threads:
            thread.join(120)
        for run in self.runs:
            run.end()

    def assert_stored_once(self) -> None:
        for run in self.runs:
            series = self.client.runs.metric_history(run.id, "x")
            assert series.total_points == self.points, run.name
            np.testing.assert_array_equal(series.steps, np.arange(self.points))
            np.testing.assert_array_equal(series.values, np.arange(self.points, dtype=float))
            assert self.client.runs.get(run.id).status == "Completed"
