"""The environment and arguments a SageMaker training container gives a script.

Values follow the SageMaker training toolkit (``sagemaker_training.environment`` and
``mapping``), so a script written for SageMaker finds what it reads, spelled the same.
A job on N nodes is N hosts, ``algo-1`` .. ``algo-N``, one homogeneous instance group;
each host gets its own view (``current_host``, ``is_master``, its own directories).
"""

import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from naiad.executors.base import LaunchSpec
from naiad.executors.supervisor.workdir import WorkDir, write_json_atomic

HOST = "algo-1"
GROUP = "homogeneousCluster"
INSTANCE_TYPE = "local"  # what SageMaker's local mode calls an instance on this machine
CHANNEL_DEFAULTS: dict[str, Any] = {
    "distribution": "FullyReplicated",
    "input_mode": "File",
    "content_type": None,
    "compression": "None",
    "record_wrapper": "None",
    "manifest": None,
}


def channel_options(spec: LaunchSpec, name: str) -> dict[str, Any]:
    """The channel's options, defaults filled in."""
    return {**CHANNEL_DEFAULTS, **spec.channels.get(name, {})}


def data_config(spec: LaunchSpec, channels: list[str]) -> dict[str, dict[str, str]]:
    """``inputdataconfig.json``: each channel's settings, in SageMaker's spelling."""
    config = {}
    for name in channels:
        options = channel_options(spec, name)
        entry = {
            "TrainingInputMode": str(options["input_mode"]),
            "S3DistributionType": str(options["distribution"]),
            "RecordWrapperType": str(options["record_wrapper"]),
            "CompressionType": str(options["compression"]),
        }
        if options["content_type"]:
            entry["ContentType"] = str(options["content_type"])
        config[name] = entry
    return config


def resource_config(host: str, hosts: list[str]) -> dict[str, Any]:
    """``resourceconfig.json`` for ``host``, as SageMaker writes it."""
    return {
        "current_host": host,
        "current_instance_type": INSTANCE_TYPE,
        "current_group_name": GROUP,
        "hosts": hosts,
        "instance_groups": [
            {"instance_group_name": GROUP, "instance_type": INSTANCE_TYPE, "hosts": hosts}
        ],
        "network_interface_name": "lo",
    }


def env_name(name: str) -> str:
    """``val-set`` -> ``VAL_SET``: the suffix of SM_CHANNEL_* and SM_HP_* variables."""
    return "".join(c if c.isalnum() else "_" for c in name.upper())


def decode_hyperparameters(raw: Mapping[str, object]) -> dict[str, Any]:
    """Typed values, as the toolkit decodes them: a string that parses as JSON is that JSON."""
    typed: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        typed[key] = value
    return typed


def hyperparameters_file(raw: Mapping[str, object]) -> dict[str, str]:
    """``hyperparameters.json``: every value a string; non-strings JSON-encoded, as SageMaker."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}


def _arg_value(value: Any) -> str:
    if isinstance(value, Mapping):
        return ",".join(f"{k}={v}" for k, v in sorted(value.items()))
    return str(value)


def user_args(typed: Mapping[str, Any]) -> list[str]:
    """``--lr 0.001 --epochs 20`` in key order (``-k`` for a one-letter key), as the toolkit."""
    args: list[str] = []
    for key in sorted(typed):
        args += [f"--{key}" if len(key) > 1 else f"-{key}", _arg_value(typed[key])]
    return args


def _env_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def sagemaker_env(
    spec: LaunchSpec, wd: WorkDir, channels: list[str], num_cpus: int, host: str = HOST
) -> dict[str, str]:
    """Every ``SM_*`` variable the training toolkit sets that a script may read, as ``host``."""
    typed = decode_hyperparameters(spec.hyperparameters)
    channel_dirs = {name: str(wd.data / name) for name in channels}
    hosts = spec.host_names()
    master = hosts[0]
    group = {"instance_group_name": GROUP, "instance_type": INSTANCE_TYPE, "hosts": hosts}
    training_env: dict[str, Any] = {
        "additional_framework_parameters": {},
        "channel_input_dirs": channel_dirs,
        "current_host": host,
        "current_instance_group": GROUP,
        "current_instance_group_hosts": hosts,
        "current_instance_type": INSTANCE_TYPE,
        "distribution_hosts": hosts,
        "distribution_instance_groups": [GROUP],
        "framework_module": None,
        "hosts": hosts,
        "hyperparameters": typed,
        "input_config_dir": str(wd.config),
        "input_data_config": data_config(spec, channels),
        "input_dir": str(wd.input),
        "instance_groups": [GROUP],
        "instance_groups_dict": {GROUP: group},
        "is_hetero": False,
        "is_master": host == master,
        "job_name": spec.job_name,
        "log_level": 20,
        "master_hostname": master,
        "model_dir": str(wd.model),
        "module_dir": str(wd.code),
        "network_interface_name": "lo",
        "num_cpus": num_cpus,
        "num_gpus": spec.gpus,
        "output_data_dir": str(wd.output_data),
        "output_dir": str(wd.output),
        "output_intermediate_dir": str(wd.output / "intermediate"),
        "resource_config": resource_config(host, hosts),
    }
    if spec.entrypoint is not None:  # a command job runs no script of its own
        entry = Path(spec.entrypoint)
        training_env["module_name"] = entry.with_suffix("").as_posix().replace("/", ".")
        training_env["user_entry_point"] = spec.entrypoint
    env = {
        "SM_" + key.upper(): _env_value(value)
        for key, value in training_env.items()
        if key not in ("additional_framework_parameters", "channel_input_dirs", "framework_module")
    }
    env["SM_HPS"] = env.pop("SM_HYPERPARAMETERS")
    env["SM_FRAMEWORK_PARAMS"] = "{}"
    env["SM_CHANNELS"] = json.dumps(sorted(channels))
    env.update({f"SM_CHANNEL_{env_name(n)}": d for n, d in channel_dirs.items()})
    env.update({f"SM_HP_{env_name(k)}": _env_value(v) for k, v in typed.items()})
    env["SM_USER_ARGS"] = json.dumps(user_args(typed))
    env["SM_HOST_COUNT"] = str(len(hosts))
    env["SM_CURRENT_HOST_RANK"] = str(hosts.index(host))
    env["SM_TRAINING_ENV"] = json.dumps(training_env)
    return env


def _gpu_ids() -> list[str]:
    """The GPUs this machine lets the job use: CUDA_VISIBLE_DEVICES's, else /dev/nvidiaN."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g.strip() for g in visible.split(",") if g.strip()]
    found = [p.name.removeprefix("nvidia") for p in Path("/dev").glob("nvidia[0-9]*")]
    return [str(n) for n in sorted(int(n) for n in found if n.isdigit())]


def host_gpus(spec: LaunchSpec, host: str) -> str | None:
    """CUDA_VISIBLE_DEVICES for one of several hosts: its own ``gpus`` GPUs, when the
    machine has enough for every host (else None: the hosts share what there is). A
    gang's host is a machine of its own, whose GPUs its scheduler already chose."""
    hosts = spec.host_names()
    if len(hosts) < 2 or spec.gpus < 1 or spec.gang is not None:
        return None
    ids = _gpu_ids()
    if len(ids) < len(hosts) * spec.gpus:
        return None
    start = hosts.index(host) * spec.gpus
    return ",".join(ids[start : start + spec.gpus])


# What the job keeps of the NAIAD_* variables it inherits: its client-side settings.
_CLIENT_SETTINGS = frozenset({"NAIAD_FLUSH_TIMEOUT", "NAIAD_PROJECT"})


def _server_only(name: str) -> bool:
    """The server's settings and secrets, which the job's processes must not see: its
    database URL (with a password, maybe), its identity provider's client secret, its
    token and home; the job gets its own NAIAD_* below."""
    if name.startswith("NAIAD_"):
        return name not in _CLIENT_SETTINGS
    return name in ("PGPASSWORD", "PGPASSFILE")


def job_env(
    spec: LaunchSpec,
    wd: WorkDir,
    channels: list[str],
    attempt: int,
    procs: int,
    host: str = HOST,
) -> dict[str, str]:
    """The whole environment of ``host``'s training processes: inherited, the job's own
    ``environment``, then SageMaker's and Naiad's (which win on a clash)."""
    num_cpus = os.cpu_count() or 1
    env = {k: v for k, v in os.environ.items() if not _server_only(k)}
    env.update(spec.environment)
    env.update(sagemaker_env(spec, wd, channels, num_cpus, host))
    if (gpus := host_gpus(spec, host)) is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpus
    env.update(
        NAIAD_JOB_NAME=spec.job_name,
        NAIAD_RUN_ID=spec.run_id,
        NAIAD_ATTEMPT=str(attempt),
        NAIAD_CHECKPOINT_DIR=str(wd.checkpoints),
        NAIAD_HOME=str(wd.naiad_home),  # the SDK's spool is per job
        NAIAD_JOB_DIR=str(wd.root),  # how the job's leftovers are found (job_processes)
        PYTHONUNBUFFERED="1",
    )
    if spec.server_url:
        env["NAIAD_URL"] = spec.server_url
    if spec.token:
        env["NAIAD_TOKEN"] = spec.token
    hosts = 1 if spec.gang is not None else max(1, spec.nodes)  # hosts sharing this machine
    env.setdefault("OMP_NUM_THREADS", str(max(1, num_cpus // (hosts * max(1, procs)))))
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(wd.code) + (os.pathsep + path if path else "")
    return env


def write_config(spec: LaunchSpec, wd: WorkDir, channels: list[str], host: str = HOST) -> None:
    """``input/config/*.json`` for ``host``, the files a SageMaker script may read instead of
    variables."""
    write_json_atomic(
        wd.config / "hyperparameters.json", hyperparameters_file(spec.hyperparameters)
    )
    write_json_atomic(wd.config / "resourceconfig.json", resource_config(host, spec.host_names()))
    write_json_atomic(wd.config / "inputdataconfig.json", data_config(spec, channels))
