"""A worker killed mid-training: the job retries from its checkpoint, metrics have each step
once, and the final model equals that of a job that never failed."""

import tarfile
from pathlib import Path

import torch

import naiad
from naiad.testing.live import LiveServer

SOURCE = Path(__file__).parent / "jobs"
HP = {"epochs": 4, "steps_per_epoch": 10}


def final_weights(home: Path, name: str, tmp: Path) -> dict[str, torch.Tensor]:
    with tarfile.open(home / f"artifacts/jobs/{name}/output/model.tar.gz") as tar:
        tar.extractall(tmp / name, filter="data")
    return torch.load(tmp / name / "model.pt", weights_only=True)


def test_retry_resumes_and_matches_a_clean_run(client_env: LiveServer, tmp_path: Path) -> None:
    client = naiad.Client()
    clean = client.training_jobs.create(
        name="clean", entrypoint="resumable.py", source_dir=SOURCE, hyperparameters=HP
    )
    crashy = client.training_jobs.create(
        name="crashy",
        entrypoint="resumable.py",
        source_dir=SOURCE,
        hyperparameters={**HP, "crash_at_step": 25},  # mid epoch 2; checkpoint after epoch 1
        max_retries=2,
    )
    done_clean, done_crashy = clean.wait(timeout=180), crashy.wait(timeout=180)
    assert done_clean.status == "Completed", done_clean.status_reason
    assert done_crashy.status == "Completed", done_crashy.status_reason
    assert done_crashy.attempt == 1
    assert "resumed after epoch 1" in "".join(crashy.logs())

    total = HP["epochs"] * HP["steps_per_epoch"]
    history = client.runs.metric_history(done_crashy.run_id, "loss")
    assert history.steps.tolist() == list(range(total))  # each step once, none missing
    reference = client.runs.metric_history(done_clean.run_id, "loss")
    torch.testing.assert_close(torch.from_numpy(history.values), torch.from_numpy(reference.values))

    a = final_weights(client_env.home, "clean", tmp_path)
    b = final_weights(client_env.home, "crashy", tmp_path)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
