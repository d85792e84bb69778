"""A job's memory limit: past it the job fails with OutOfMemory, at once and saying so,
instead of the kernel killing a process with no word of why; within it, the log says the
peak, for sizing the next one."""

from pathlib import Path

import naiad
from naiad.testing.live import LiveServer

HOG = """
import sys, time
held = b"x" * (int(sys.argv[sys.argv.index("--mb") + 1]) * 2**20)  # written, so resident
print(f"holding {len(held) >> 20} MiB", flush=True)
time.sleep(float(sys.argv[sys.argv.index("--hold") + 1]))
"""


def test_a_job_past_its_memory_limit_fails_with_out_of_memory(
    live: LiveServer, tmp_path: Path
) -> None:
    client = naiad.Client(url=live.url, token=live.token)
    (tmp_path / "hog.py").write_text(HOG)
    over = client.training_jobs.create(
        name="hog",
        entrypoint="hog.py",
        source_dir=tmp_path,
        hyperparameters={"mb": 700, "hold": 60},
        memory_mb=400,
    ).wait(timeout=60)
    assert over.status == "Failed"
    assert over.status_reason is not None
    assert over.status_reason.startswith("OutOfMemory: the job's processes used ")
    assert "over its memory limit of 400 MiB (memory_mb)" in over.status_reason
    assert over.memory_mb == 400
    ran = (over.ended_at - over.started_at).total_seconds()  # type: ignore[operator]
    assert ran < 30  # ended when it went over, not after its 60 s

    within = client.training_jobs.create(
        name="sipper",
        entrypoint="hog.py",
        source_dir=tmp_path,
        hyperparameters={"mb": 20, "hold": 0.5},
        memory_mb=400,
    )
    done = within.wait(timeout=60)
    assert done.status == "Completed", done.status_reason
    log = "".join(within.logs())
    assert "memory: peak " in log and "MiB of the 400 MiB limit" in log
