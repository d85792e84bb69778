"""One machine, one full disk: the server and a training script share it.

A real server and a real script (subprocesses) with the Naiad home on a small tmpfs,
filled to the last byte. The script's logging never fails; the server answers 507;
once space comes back, every point arrives. Needs permission to mount a tmpfs (root
with CAP_SYS_ADMIN, as in CI); tests/unit/test_pipeline_full_disk.py and
tests/integration/test_disk_full.py cover the same ground without it.
"""

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import naiad
from naiad.testing.disk import Ballast, small_filesystem
from naiad.testing.live import LiveServer

SCRIPT = textwrap.dedent(
    """
    import sys
    import naiad

    run = naiad.start_run()  # the run named by NAIAD_RUN_ID
    for step in range(1000):
        run.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    print("first flush:", run.flush(timeout=1), flush=True)
    sys.stdin.readline()  # the test frees space meanwhile
    print("second flush:", run.flush(timeout=60), flush=True)
    run.end()
    """
)


@pytest.fixture
def full_home(tmp_path: Path) -> Iterator[tuple[LiveServer, Ballast]]:
    with small_filesystem(tmp_path / "fs", size_mb=32) as mount:
        if mount is None:
            pytest.skip("mounting a tmpfs is not permitted here")
        server = LiveServer(home=mount / "home")
        server.start()
        try:
            yield server, Ballast(mount / "ballast")
        finally:
            server.stop()


def test_a_training_script_outlives_a_full_disk(full_home: tuple[LiveServer, Ballast]) -> None:
    server, ballast = full_home
    with naiad.Client(url=server.url, token=server.token) as client:
        run = client.runs.create(experiment="full-disk")
        ballast.fill()
        script = subprocess.Popen(
            [sys.executable, "-c", SCRIPT],
            env={**server.environ(), "NAIAD_RUN_ID": run.id},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert script.stdout is not None and script.stdin is not None
        try:
            assert script.stdout.readline().strip() == "first flush: False"
            ballast.free()
            out, err = script.communicate("go\n", timeout=120)
        finally:
            if script.poll() is None:
                script.kill()
        assert script.returncode == 0, err
        assert out.strip() == "second flush: True"
        assert "Traceback" not in err
        lines = err.strip().splitlines()
        disk = [line for line in lines if "cannot save metrics" in line]
        assert len(disk) == 1 and "No space left on device" in disk[0]
        refused = [line for line in lines if "the server did not store metrics" in line]
        assert len(refused) == 1 and "Out of disk space" in refused[0]
        assert "could not be stored" not in err
        loss = client.runs.metric_history(run.id, "loss")
        assert list(loss.steps) == list(range(1000))
