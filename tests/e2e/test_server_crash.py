"""A server killed with SIGKILL while an SDK logs loses no point, and stores none twice."""

import time
from pathlib import Path

import numpy as np

import naiad
from naiad.testing.live import LiveServer


def test_sigkill_during_logging_loses_nothing(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    server = LiveServer(home=tmp_path / "home")
    server.start()
    monkeypatch.setenv("NAIAD_HOME", str(server.home))
    try:
        client = naiad.Client()
        run = naiad.start_run(experiment="crash", client=client, flush_interval=0.05)
        steps_per_phase = 20_000
        step = 0
        for phase in range(3):
            for _ in range(steps_per_phase):
                run.log_metrics({"loss": step * 0.5, "acc": -step}, step=step)
                step += 1
                if step % 500 == 0:
                    time.sleep(0.005)  # let the sender cut batches while we log
            if phase == 0:
                server.kill()  # mid-stream: some batches in flight, later ones spool
            elif phase == 1:
                assert run._metrics.spool.pending(), "batches should wait on disk while down"
                server.start()
        run.end()
        history = client.runs.metric_history(run.id, "loss")
        assert len(history) == step
        np.testing.assert_array_equal(history.steps, np.arange(step))
        np.testing.assert_array_equal(history.values, np.arange(step) * 0.5)
        assert len(client.runs.metric_history(run.id, "acc")) == step
        assert client.runs.get(run.id).metrics["loss"].count == step
        assert run._metrics.spool.pending() == []
    finally:
        server.stop()
