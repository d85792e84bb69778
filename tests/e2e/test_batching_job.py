"""A job that picks its batch with the finder and warms it up: the run records the choice,
the batch size and learning rate of every step, and a resize with its reason."""

import math
import tarfile
from pathlib import Path

import naiad
from naiad.testing.live import LiveServer

SCRIPT = """
import torch
from torch import nn
from torch.utils.data import TensorDataset

from naiad.runtime import batching

g = torch.Generator().manual_seed(0)
x = torch.randn(2048, 16, generator=g)
rows = TensorDataset(x, (x @ torch.randn(16, 4, generator=g)).argmax(1))
model = nn.Sequential(nn.Linear(16, 256), nn.ReLU(), nn.Linear(256, 4))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)


def loss(model, batch):
    return nn.functional.cross_entropy(model(batch[0]), batch[1])


found = batching.find_batch_size(model, rows, loss, optimizer, memory_budget="256MiB",
                                 max_size=256)
dyn = batching.DynamicBatch(rows, optimizer, batch_size=16, warmup_to=found.batch_size,
                            warmup_steps=20)
for epoch in range(2):
    for batch in dyn.batches(epoch):
        dyn.backward(lambda b: loss(model, b), batch)
        dyn.step()
dyn.resize(64, "the script's own choice")
print("steps", dyn.global_step, flush=True)
"""


def test_a_job_records_its_batch_sizes_learning_rates_and_resizes(
    live: LiveServer, tmp_path: Path
) -> None:
    client = naiad.Client(url=live.url, token=live.token)
    (tmp_path / "train.py").write_text(SCRIPT)
    job = client.training_jobs.create(name="batching", entrypoint="train.py", source_dir=tmp_path)
    done = job.wait(timeout=240)
    assert done.status == "Completed", "".join(job.logs())[-2000:]
    log = "".join(job.logs())
    assert "batch size finder: batch size 256, bounded by the largest size allowed" in log
    assert "batch size: 256 -> 64 at step" in log and "(the script's own choice)" in log

    run = client.runs.get(done.run_id)
    assert run.params["batch_finder.batch_size"] == 256
    assert "256: " in run.params["batch_finder.trials"]
    assert run.tags["naiad.batch_size"].startswith("64 from step ")
    sizes = client.runs.metric_history(done.run_id, "batch/size")
    lrs = client.runs.metric_history(done.run_id, "batch/lr")
    by_step = dict(zip(sizes.steps.tolist(), sizes.values.tolist(), strict=True))
    assert by_step[0] == 16 and by_step[10] == 136 and by_step[20] == 256  # the ramp
    lr_at = dict(zip(lrs.steps.tolist(), lrs.values.tolist(), strict=True))
    assert math.isclose(lr_at[0], 1e-3) and math.isclose(lr_at[20], 1e-3 * math.sqrt(16))

    # the embedded default keeps artifacts in the home; a job's output.tar.gz is SageMaker's
    archive = live.home / "artifacts" / done.output_uri / "output.tar.gz"
    with tarfile.open(archive) as tar:
        member = next(n for n in tar.getnames() if n.endswith("batch_sizes.json"))
        written = tar.extractfile(member).read().decode()  # type: ignore[union-attr]
    assert '"why": "the script\'s own choice"' in written
