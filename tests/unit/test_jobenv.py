"""What a job's request may say about its environment, and what each host is told:
SageMaker's variables and config files for algo-1..algo-N, channel options, the job's own
variables under Naiad's."""

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from naiad.executors.base import LaunchSpec
from naiad.executors.supervisor import launch
from naiad.executors.supervisor.hosts import Host, host_text, hosts_of
from naiad.executors.supervisor.jobenv import job_env, resource_config, write_config
from naiad.executors.supervisor.workdir import WorkDir, read_json
from naiad.schemas.jobs import ChannelOptions, JobCreate, JobSpec

BASE = {"name": "envs", "entrypoint": "train.py", "source_uri": "sources/x.tar.gz"}


def spec(tmp_path: Path, **fields: object) -> LaunchSpec:
    return LaunchSpec(
        job_name="envs",
        run_id="run-1",
        work_dir=tmp_path / "envs",
        source_uri="sources/x.tar.gz",
        entrypoint="train.py",
        **fields,  # type: ignore[arg-type]
    )


def refusal(**fields: object) -> str:
    with pytest.raises(ValidationError) as caught:
        JobCreate.model_validate({**BASE, **fields})
    return str(caught.value.errors()[0]["msg"]).removeprefix("Value error, ")


def test_bad_environment_keys_are_refused_with_a_sentence() -> None:
    assert "reserves for the variables it sets itself" in refusal(environment={"SM_HOSTS": "x"})
    assert refusal(environment={"NAIAD_TOKEN": "x"}).startswith(
        "environment variable 'NAIAD_TOKEN' starts with NAIAD_, which Naiad reserves"
    )
    assert "is not a valid name" in refusal(environment={"1BAD": "x"})
    assert "is not a valid name" in refusal(environment={"MY-VAR": "x"})
    assert "at most 512 characters and no NUL" in refusal(environment={"A": "x" * 513})
    assert "at most 100 are allowed" in refusal(environment={f"V{i}": "" for i in range(101)})
    ok = JobCreate.model_validate({**BASE, "environment": {"MY_FLAG": "on", "_x1": ""}})
    assert ok.environment == {"MY_FLAG": "on", "_x1": ""}


def test_channel_options_name_input_channels() -> None:
    said = refusal(inputs={"train": "file:///d"}, channels={"test": {"distribution": "Sharded"}})
    assert "Input should be 'FullyReplicated' or 'ShardedByS3Key'" in said
    said = refusal(inputs={"train": "file:///d"}, channels={"test": {}})
    assert said.startswith("channel options are given for 'test', which is not in inputs")
    assert "(it has: 'train')" in said
    body = JobCreate.model_validate(
        {
            **BASE,
            "inputs": {"train": "file:///d"},
            "channels": {"train": {"distribution": "ShardedByS3Key", "input_mode": "FastFile"}},
            "checkpoint_uri": "checkpoints/shared",
        }
    )
    assert body.channels["train"] == ChannelOptions(
        distribution="ShardedByS3Key", input_mode="FastFile"
    )


def test_old_job_specs_read_with_the_new_fields_empty() -> None:
    """A spec stored before environments, channel options and checkpoint URIs existed."""
    old = {
        "entrypoint": "train.py",
        "source_uri": "sources/abc.tar.gz",
        "experiment": "jobs",
        "output_uri": "jobs/old/output",
        "metric_definitions": [],
    }
    spec = JobSpec.model_validate(old)
    assert (spec.environment, spec.channels, spec.checkpoint_uri) == ({}, {}, None)


def test_each_host_is_told_who_it_is(tmp_path: Path) -> None:
    launch_spec = spec(
        tmp_path,
        nodes=3,
        inputs={"train": "file:///d", "test": "file:///t"},
        channels={"train": {"distribution": "ShardedByS3Key", "content_type": "text/csv"}},
        environment={"MY_FLAG": "on", "PYTHONUNBUFFERED": "0", "WORLD_SIZE": "99"},
    )
    wd = WorkDir(tmp_path / "envs")
    hosts = hosts_of(launch_spec, wd)
    assert [(h.name, h.rank) for h in hosts] == [("algo-1", 0), ("algo-2", 1), ("algo-3", 2)]
    second = hosts[1]
    assert second.wd.model == tmp_path / "envs" / "hosts" / "algo-2" / "model"
    assert second.wd.checkpoints == wd.checkpoints and second.wd.code == wd.code

    env = job_env(launch_spec, second.wd, ["test", "train"], 0, 1, second.name)
    env = launch.launch_env(env, 1, 29500, 3, second.rank)
    names = ["algo-1", "algo-2", "algo-3"]
    assert env["SM_CURRENT_HOST"] == "algo-2" and json.loads(env["SM_HOSTS"]) == names
    assert env["SM_IS_MASTER"] == "false" and env["SM_MASTER_HOSTNAME"] == "algo-1"
    assert env["SM_CURRENT_HOST_RANK"] == "1" and env["SM_HOST_COUNT"] == "3"
    assert json.loads(env["SM_RESOURCE_CONFIG"]) == resource_config("algo-2", names)
    assert (env["RANK"], env["WORLD_SIZE"], env["LOCAL_RANK"]) == ("1", "3", "0")
    assert (env["MASTER_ADDR"], env["MASTER_PORT"]) == ("127.0.0.1", "29500")
    assert env["SM_CHANNEL_TRAIN"] == str(second.wd.data / "train")
    assert env["MY_FLAG"] == "on"  # the job's own variable...
    assert env["PYTHONUNBUFFERED"] == "1" and env["WORLD_SIZE"] == "3"  # ...under Naiad's
    config = json.loads(env["SM_INPUT_DATA_CONFIG"])
    assert config["train"] == {
        "TrainingInputMode": "File",
        "S3DistributionType": "ShardedByS3Key",
        "RecordWrapperType": "None",
        "CompressionType": "None",
        "ContentType": "text/csv",
    }
    assert "ContentType" not in config["test"]

    first = job_env(launch_spec, hosts[0].wd, ["test", "train"], 0, 1, hosts[0].name)
    assert first["SM_IS_MASTER"] == "true" and first["SM_CURRENT_HOST"] == "algo-1"


def test_resourceconfig_json_is_sagemakers(tmp_path: Path) -> None:
    launch_spec = spec(tmp_path, nodes=2, inputs={"train": "file:///d"})
    host = hosts_of(launch_spec, WorkDir(tmp_path / "envs"))[1]
    write_config(launch_spec, host.wd, ["train"], host.name)
    assert read_json(host.wd.config / "resourceconfig.json") == {
        "current_host": "algo-2",
        "current_instance_type": "local",
        "current_group_name": "homogeneousCluster",
        "hosts": ["algo-1", "algo-2"],
        "instance_groups": [
            {
                "instance_group_name": "homogeneousCluster",
                "instance_type": "local",
                "hosts": ["algo-1", "algo-2"],
            }
        ],
        "network_interface_name": "lo",
    }
    assert read_json(host.wd.config / "inputdataconfig.json") == {
        "train": {
            "TrainingInputMode": "File",
            "S3DistributionType": "FullyReplicated",
            "RecordWrapperType": "None",
            "CompressionType": "None",
        }
    }


def test_one_node_keeps_the_single_host_layout(tmp_path: Path) -> None:
    wd = WorkDir(tmp_path / "envs")
    (host,) = hosts_of(spec(tmp_path), wd)
    assert host == Host("algo-1", 0, wd) and host.wd.model == tmp_path / "envs" / "model"


def test_a_hosts_lines_are_told_apart_in_the_log() -> None:
    text = "[naiad] start\nloss 1\n[algo-2] [rank2] boom\n[algo-3] other\n[rank0] fine\n"
    hosts = [Host(f"algo-{i + 1}", i, WorkDir(Path("/j"))) for i in range(3)]
    assert host_text(text, hosts[0]) == "[naiad] start\nloss 1\n[rank0] fine\n"
    assert host_text(text, hosts[1]) == "[rank2] boom\n"
