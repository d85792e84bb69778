"""A command job (SageMaker's ContainerEntrypoint): what its request may say, and how
``/opt/ml`` becomes each host's own directory in its arguments, environment and the
channels that name it, without touching the staged data or another host's copy."""

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from naiad.executors.base import LaunchSpec
from naiad.executors.supervisor import container
from naiad.executors.supervisor.staging import StagingError
from naiad.executors.supervisor.workdir import WorkDir
from naiad.schemas.jobs import JobCreate

COMMAND = {"name": "cmd", "command": ["/bin/bash", "-c", "true"]}


def refusal(**fields: object) -> str:
    with pytest.raises(ValidationError) as caught:
        JobCreate.model_validate(fields)
    return str(caught.value.errors()[0]["msg"]).removeprefix("Value error, ")


def spec(tmp_path: Path, **fields: object) -> LaunchSpec:
    return LaunchSpec(
        job_name="cmd",
        run_id="run-1",
        work_dir=tmp_path / "cmd",
        source_uri=None,
        entrypoint=None,
        **fields,  # type: ignore[arg-type]
    )


def test_a_job_runs_a_script_or_a_command() -> None:
    job = JobCreate.model_validate(COMMAND)
    assert job.entrypoint is None and job.source_uri is None
    assert "not both and not neither" in refusal(name="x")
    assert "not both" in refusal(**COMMAND, entrypoint="train.py", source_uri="sources/a.tar.gz")
    assert "give source_uri" in refusal(name="x", entrypoint="train.py")
    assert "set it to 1" in refusal(**COMMAND, processes_per_node=2)
    assert "is empty" in refusal(name="x", command=[""])
    assert "NUL" in refusal(name="x", command=["a\x00b"])
    assert "not in inputs" in refusal(**COMMAND, opt_ml_channels=["drivers"])
    assert "for a command job" in refusal(
        name="x",
        entrypoint="train.py",
        source_uri="sources/a.tar.gz",
        inputs={"d": "s3://b/d"},
        opt_ml_channels=["d"],
    )


def test_opt_ml_names_the_hosts_directory(tmp_path: Path) -> None:
    one = WorkDir(tmp_path)
    assert container.rewrite("cat /opt/ml/input/config/x.json", one) == (
        f"cat {tmp_path}/input/config/x.json"
    )
    assert container.rewrite('"/opt/ml"', one) == f'"{tmp_path}"'
    assert container.rewrite("/opt/mlflow /opt/ml.bak /opt/ml_x", one) == (
        "/opt/mlflow /opt/ml.bak /opt/ml_x"
    )
    second = one.for_host("algo-2")  # its own input/, model/, output/; the job's code/
    assert container.rewrite("/opt/ml/model /opt/ml/code/a /opt/ml/checkpoints", second) == (
        f"{tmp_path}/hosts/algo-2/model {tmp_path}/code/a {tmp_path}/checkpoints"
    )
    assert container.rewrite("/opt/ml/codebase", second) == f"{tmp_path}/hosts/algo-2/codebase"

    job = spec(
        tmp_path,
        command=["sh", "-c", "ls /opt/ml/model"],
        environment={"DATA": "/opt/ml/input/data/train", "SM_X": "/opt/ml"},
    )
    assert container.command(job, one) == ["sh", "-c", f"ls {tmp_path}/model"]
    env = container.environment(
        {"DATA": "/opt/ml/input/data/train", "SM_X": "naiad's", "PATH": "/usr/bin"},
        job,
        one,
        "/envs/job/bin/python",
    )
    assert env["DATA"] == f"{tmp_path}/input/data/train"
    assert env["SM_X"] == "naiad's"  # a variable Naiad set over the job's is left alone
    assert env["PATH"] == "/envs/job/bin:/usr/bin"


def test_a_directory_a_shell_cannot_take_unquoted_is_refused(tmp_path: Path) -> None:
    container.check_dir(WorkDir(tmp_path / "plain-dir_1.x"))
    with pytest.raises(StagingError, match="NAIAD_HOME"):
        container.check_dir(WorkDir(tmp_path / "my jobs"))


def test_each_host_gets_its_own_rewritten_copy_and_the_bucket_is_untouched(
    tmp_path: Path,
) -> None:
    bucket = tmp_path / "bucket" / "drivers"  # a FastFile channel links here
    (bucket / "scripts").mkdir(parents=True)
    (bucket / "run.sh").write_text("cd /opt/ml/input/data/code && echo /opt/ml/model\n")
    (bucket / "run.sh").chmod(0o755)
    (bucket / "scripts" / "env.py").write_text('OUT = "/opt/ml/input/sm_training.env"\n')
    (bucket / "cache.pyc").write_bytes(b"\0\0/opt/ml/model\0")
    job = spec(
        tmp_path, command=["true"], inputs={"sm_drivers": "x"}, opt_ml_channels=["sm_drivers"]
    )
    root = WorkDir(tmp_path / "cmd")
    hosts = [root.for_host("algo-1"), root.for_host("algo-2")]
    for wd in hosts:
        wd.data.mkdir(parents=True)
        (wd.data / "sm_drivers").symlink_to(bucket, target_is_directory=True)
    lines: list[str] = []
    container.stage_channels(job, hosts, lines.append)

    for wd in hosts:
        drivers = wd.data / "sm_drivers"
        assert not drivers.is_symlink()
        assert (drivers / "run.sh").read_text() == (
            f"cd {wd.base}/input/data/code && echo {wd.base}/model\n"
        )
        assert os.access(drivers / "run.sh", os.X_OK)
        assert (drivers / "scripts" / "env.py").read_text() == (
            f'OUT = "{wd.base}/input/sm_training.env"\n'
        )
        assert (drivers / "cache.pyc").read_bytes() == b"\0\0/opt/ml/model\0"  # binary: as is
    assert (bucket / "run.sh").read_text().startswith("cd /opt/ml/")
    assert lines == [
        f"channel sm_drivers for algo-{i}: /opt/ml in 2 file(s) now names {hosts[i - 1].base}"
        for i in (1, 2)
    ]
