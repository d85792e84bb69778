"""A job's requirements.txt is pip-installed into a cached env layered over the server's.

Real supervisors and real pip, fully offline: pip reads no config file and no index, so
a requirement is either satisfied by the server's packages (numpy, torch), built from a
local package directory in the job's source, or not found at all.
"""

import json
import sys
from pathlib import Path

import pytest

from naiad.executors.base import ExecState, LaunchSpec
from naiad.executors.local import LocalExecutor
from naiad.store.artifacts import open_artifact_store
from naiad.testing.jobs import launch_spec, wait_terminal

REPORT_SCRIPT = """
    import importlib.util, json, os, sys
    import numpy
    try:
        import mypkg
        answer = mypkg.ANSWER
    except ImportError:
        answer = None
    report = {
        "python": sys.executable,
        "prefix": sys.prefix,
        "torch": importlib.util.find_spec("torch").origin,  # torchrun imports it for real
        "answer": answer,
    }
    name = "rank" + os.environ["RANK"] + ".json"
    with open(os.path.join(os.environ["SM_MODEL_DIR"], name), "w") as f:
        json.dump(report, f)
"""

MYPKG = {
    "mypkg/pyproject.toml": """
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "mypkg"
        version = "1.0"
    """,
    "mypkg/mypkg/__init__.py": "ANSWER = 42\n",
}


@pytest.fixture(autouse=True)
def offline_pip(monkeypatch: pytest.MonkeyPatch) -> None:
    """The supervisors inherit this: no pip config (find-links, indexes), no index at all."""
    monkeypatch.setenv("PIP_CONFIG_FILE", "/dev/null")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_NO_BUILD_ISOLATION", "0")  # build ./mypkg with our setuptools


def make_job(tmp_path: Path, name: str, files: dict[str, str], **fields: object) -> LaunchSpec:
    """A job whose source snapshot (``train.py`` plus ``files``) is in a tmp file:// store."""
    store = open_artifact_store((tmp_path / "artifacts").as_uri())
    return launch_spec(tmp_path, store, {"train.py": REPORT_SCRIPT, **files}, name, **fields)


def wait(executor: LocalExecutor, spec: LaunchSpec, timeout: float = 90.0) -> ExecState:
    return wait_terminal(executor, spec, timeout)


def log(spec: LaunchSpec) -> str:
    return (spec.work_dir / "logs" / "job.log").read_text(errors="replace")


def report(spec: LaunchSpec, rank: int = 0) -> dict[str, object]:
    return json.loads((spec.work_dir / "model" / f"rank{rank}.json").read_text())


def envs(tmp_path: Path) -> list[Path]:
    """The envs in the cache (lock files aside)."""
    root = tmp_path / "envs"
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []


def test_requirements_install_once_into_a_layered_env_shared_by_jobs(tmp_path: Path) -> None:
    """Two jobs, one plain and one under torchrun, start together with the same file:
    one builds the env while the other waits for it, and both run in it."""
    files = {"requirements.txt": "# what the script needs\nnumpy\n./mypkg\n", **MYPKG}
    one = make_job(tmp_path, "one", files)
    ddp = make_job(tmp_path, "ddp", files, processes_per_node=2)
    executor = LocalExecutor()
    executor.submit(one)
    executor.submit(ddp)
    for spec in (one, ddp):
        state = wait(executor, spec)
        assert state.phase == "succeeded", f"{state.reason}\n{log(spec)}"

    [env] = envs(tmp_path)
    logs = [log(one), log(ddp)]
    installed = [text for text in logs if "installing into a new environment" in text]
    reused = [text for text in logs if "reusing the environment" in text]
    assert len(installed) == 1 and len(reused) == 1, logs
    assert "[pip] Requirement already satisfied: numpy" in installed[0]  # the server's numpy
    assert "[pip] Successfully installed mypkg-1.0" in installed[0]
    assert "[pip]" not in reused[0]

    for spec, rank in [(one, 0), (ddp, 0), (ddp, 1)]:
        seen = report(spec, rank)
        assert seen["python"] == str(env / "bin" / "python")
        assert seen["prefix"] == str(env)
        assert seen["answer"] == 42
        assert str(seen["torch"]).startswith(sys.prefix)  # the server's torch, not a copy

    # a later job with the same file starts from the cache without pip
    later = make_job(tmp_path, "later", files)
    executor.submit(later)
    assert wait(executor, later).phase == "succeeded"
    assert "reusing the environment" in log(later) and "[pip]" not in log(later)
    assert report(later)["python"] == str(env / "bin" / "python")


def test_a_requirement_pip_cannot_find_fails_the_job_with_pips_reason(tmp_path: Path) -> None:
    spec = make_job(tmp_path, "bad", {"requirements.txt": "definitely-not-a-package-naiad==9.9\n"})
    executor = LocalExecutor()
    executor.submit(spec)
    state = wait(executor, spec)

    assert state.phase == "failed"
    assert state.reason is not None
    assert state.reason.startswith("pip could not install requirements.txt: ")
    assert "No matching distribution found for definitely-not-a-package-naiad==9.9" in state.reason
    assert "[pip] ERROR:" in log(spec)
    assert not (spec.work_dir / "model" / "rank0.json").exists()  # the script never ran
    assert envs(tmp_path) == []  # a failed env is not cached


@pytest.mark.parametrize("requirements", [None, "\n# nothing needed yet\n   \n"])
def test_without_requirements_the_job_runs_with_the_servers_python(
    tmp_path: Path, requirements: str | None
) -> None:
    files = {} if requirements is None else {"requirements.txt": requirements}
    spec = make_job(tmp_path, "plain", files)
    executor = LocalExecutor()
    executor.submit(spec)
    state = wait(executor, spec)

    assert state.phase == "succeeded", f"{state.reason}\n{log(spec)}"
    assert report(spec)["python"] == sys.executable
    assert "[pip]" not in log(spec)
    assert envs(tmp_path) == []
