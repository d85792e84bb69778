"""The environment and arguments a SageMaker training container gives a script.

Values follow the SageMaker training toolkit (``sagemaker_training.environment`` and
``mapping``), so a script written for SageMaker finds what it reads, spelled the same.
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
    spec: LaunchSpec, wd: WorkDir, channels: list[str], num_cpus: int
) -> dict[str, str]:
    """Every ``SM_*`` variable the training toolkit sets that a script may read."""
    typed = decode_hyperparameters(spec.hyperparameters)
    entry = Path(spec.entrypoint)
    channel_dirs = {name: str(wd.data / name) for name in channels}
    data_config = {
        name: {
            "TrainingInputMode": "File",
            "S3DistributionType": "FullyReplicated",
            "RecordWrapperType": "None",
        }
        for name in channels
    }
    resource = {"current_host": HOST, "hosts": [HOST], "network_interface_name": "lo"}
    training_env: dict[str, Any] = {
        "additional_framework_parameters": {},
        "channel_input_dirs": channel_dirs,
        "current_host": HOST,
        "framework_module": None,
        "hosts": [HOST],
        "hyperparameters": typed,
        "input_config_dir": str(wd.config),
        "input_data_config": data_config,
        "input_dir": str(wd.input),
        "is_master": True,
        "job_name": spec.job_name,
        "log_level": 20,
        "master_hostname": HOST,
        "model_dir": str(wd.model),
        "module_dir": str(wd.code),
        "module_name": entry.with_suffix("").as_posix().replace("/", "."),
        "network_interface_name": "lo",
        "num_cpus": num_cpus,
        "num_gpus": spec.gpus,
        "output_data_dir": str(wd.output_data),
        "output_dir": str(wd.output),
        "output_intermediate_dir": str(wd.output / "intermediate"),
        "resource_config": resource,
        "user_entry_point": spec.entrypoint,
    }
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
    env["SM_TRAINING_ENV"] = json.dumps(training_env)
    return env


def job_env(
    spec: LaunchSpec, wd: WorkDir, channels: list[str], attempt: int, procs: int
) -> dict[str, str]:
    """The whole environment of the training processes: inherited, SageMaker's, Naiad's."""
    num_cpus = os.cpu_count() or 1
    env = dict(os.environ)
    for stale in ("NAIAD_URL", "NAIAD_TOKEN", "NAIAD_RUN_ID"):  # the server's own, not the job's
        env.pop(stale, None)
    env.update(sagemaker_env(spec, wd, channels, num_cpus))
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
    env.setdefault("OMP_NUM_THREADS", str(max(1, num_cpus // max(1, procs))))
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(wd.code) + (os.pathsep + path if path else "")
    return env


def write_config(spec: LaunchSpec, wd: WorkDir, channels: list[str]) -> None:
    """``input/config/*.json``, the files a SageMaker script may read instead of variables."""
    write_json_atomic(
        wd.config / "hyperparameters.json", hyperparameters_file(spec.hyperparameters)
    )
    write_json_atomic(
        wd.config / "resourceconfig.json",
        {"current_host": HOST, "hosts": [HOST], "network_interface_name": "lo"},
    )
    write_json_atomic(
        wd.config / "inputdataconfig.json",
        {name: {"TrainingInputMode": "File"} for name in channels},
    )
