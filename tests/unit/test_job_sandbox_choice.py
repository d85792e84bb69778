"""Which jobs run sandboxed under NAIAD_JOB_SANDBOX=auto, and the warning when one can't."""

import logging
from pathlib import Path

import pytest

from naiad.services.jobs import sandboxed
from naiad.settings import Settings
from naiad.store.tables import JobRow


def test_a_users_job_without_bubblewrap_runs_unsandboxed_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(home=tmp_path / "home", job_sandbox="auto")
    monkeypatch.setenv("PATH", str(tmp_path))  # a machine without bwrap
    with caplog.at_level(logging.WARNING):
        assert not sandboxed(JobRow(name="train-1", created_by="ana"), settings)
        assert not sandboxed(JobRow(name="train-2", created_by=None), settings)  # the owner's
    assert len(caplog.records) == 1  # only the user's job is worth a warning
    assert "job train-1 of user 'ana' runs without the sandbox" in caplog.text
    assert "apt-get install bubblewrap" in caplog.text
    off = Settings(home=tmp_path / "home", job_sandbox="off")
    assert not sandboxed(JobRow(name="train-3", created_by="ana"), off)
    assert len(caplog.records) == 1  # off is a choice: nothing to warn about
