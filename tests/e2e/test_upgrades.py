"""A home written by each earlier schema revision's Naiad (tests/fixtures/homes, made by
tests/fixtures/make_homes.py), started by this Naiad: the migrations run on start and
everything the old version stored reads back through the API."""

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

import naiad
from naiad.testing.live import LiveServer

HOMES = sorted((Path(__file__).parents[1] / "fixtures" / "homes").glob("*.tar.gz"))


def test_every_schema_head_has_a_fixture_home() -> None:
    """A new migration needs its fixture: run tests/fixtures/make_homes.py and commit it."""
    from naiad.store.db import head_revision

    assert HOMES and HOMES[-1].name == f"{head_revision()}.tar.gz"


@pytest.mark.parametrize("archive", HOMES, ids=[p.name.split(".")[0] for p in HOMES])
def test_a_home_from_an_earlier_version_upgrades_on_start(archive: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    with tarfile.open(archive) as tar:
        tar.extractall(home, filter="data")
    expect = json.loads((home / "expect.json").read_text())
    server = LiveServer(home=home)
    server.start()
    try:
        client = naiad.Client(url=server.url, token=server.token)
        [made] = expect["runs"]
        run = client.runs.get(made["id"])
        assert (run.name, run.experiment) == ("kept", "upgraded")
        assert run.params == {"lr": 0.01, "layers": 3, "arch": "cnn"}
        assert run.tags["team"] == "vision"
        loss = client.runs.metric_history(run.id, "loss")
        assert list(loss.steps) == list(range(40))
        assert np.allclose(loss.values, [1.0 / (s + 1) for s in range(40)])
        notes = client.runs.download_artifact(run.id, "notes.txt", tmp_path / "notes.txt")
        assert notes.read_text() == "written before the upgrade"

        job = client.training_jobs.get(expect["job"]["name"]).job
        assert job.status == "Completed" and job.run_id == expect["job"]["run_id"]
        assert "upgraded-job" in [j.name for j in client.training_jobs.list()]

        if "model" in expect:
            version = client.models.get("upgraded@production")
            assert version.version == expect["model"]["version"]
            assert [v.version for v in client.models.versions("upgraded")] == [version.version]
        # and the upgraded home takes new writes
        with naiad.start_run(experiment="upgraded", name="after", client=client) as after:
            after.log_metric("loss", 0.5, step=0)
        assert client.runs.get(after.id).status == "Completed"
    finally:
        server.stop()
