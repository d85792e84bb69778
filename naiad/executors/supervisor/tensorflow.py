"""A TensorFlow job's side of the launch: whether a script is one, whether its Python has
TensorFlow, and the variables its processes get.

``framework="auto"`` is decided here, once the code is unpacked, from the entrypoint's
imports: ``tensorflow``, ``tf_keras``, or ``keras`` on its TensorFlow backend. Such a job's
processes run under ``naiad.integrations.tensorflow_runner`` (found by path, never imported
here), which adds Naiad's Keras callback and, under torchrun, sets each rank's TF_CONFIG.

``tf.keras`` is Keras 2 (``tf_keras``) in a TensorFlow job, as ``TF_USE_LEGACY_KERAS=1``
makes it: Keras 3 does not train under MultiWorkerMirroredStrategy (keras-team/keras#20585).
A job that sets the variable itself keeps its own value.
"""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

from naiad.core.tf_config import WORKERS_ENV, tf_config
from naiad.executors.base import LaunchSpec

INSTALL = "pip install 'naiad[tensorflow]'"
_IMPORTS = re.compile(r"^[ \t]*(?:from|import)[ \t]+(tensorflow|tf_keras|keras)\b", re.MULTILINE)


def is_tensorflow(spec: LaunchSpec, code: Path, env: dict[str, str]) -> bool:
    """Whether the job runs as a TensorFlow job: said so, or (auto) its entrypoint imports
    TensorFlow, tf_keras, or Keras with no other backend chosen (``KERAS_BACKEND``)."""
    if spec.framework != "auto":
        return spec.framework == "tensorflow"
    if spec.entrypoint is None or not spec.entrypoint.endswith(".py"):
        return False
    try:
        text = (code / spec.entrypoint).read_text(errors="replace")
    except OSError:
        return False
    found = set(_IMPORTS.findall(text))
    if found & {"tensorflow", "tf_keras"}:
        return True
    return "keras" in found and env.get("KERAS_BACKEND", "tensorflow") == "tensorflow"


def missing(python: str) -> str | None:
    """Why ``python`` cannot run a TensorFlow job (a sentence), or None when it can."""
    if python == sys.executable:
        found = importlib.util.find_spec("tensorflow") is not None
    else:
        probe = "import importlib.util as u, sys; sys.exit(u.find_spec('tensorflow') is None)"
        found = subprocess.run([python, "-c", probe], capture_output=True).returncode == 0
    if found:
        return None
    return (
        "This is a TensorFlow job, but TensorFlow is not installed in the job's Python: "
        f"{INSTALL} where the server runs, or list tensorflow-cpu in the job's "
        "requirements.txt."
    )


def runner() -> str:
    """The path of the script that runs a TensorFlow job's entrypoint."""
    spec = importlib.util.find_spec("naiad.integrations.tensorflow_runner")
    assert spec is not None and spec.submodule_search_locations is not None
    return str(Path(next(iter(spec.submodule_search_locations))) / "__main__.py")


def environment(env: dict[str, str], workers: list[str], procs: int, rank: int) -> dict[str, str]:
    """A TensorFlow job's variables over ``env``. ``rank``: the host's first rank. One
    process per host gets its TF_CONFIG here; under torchrun the runner sets each rank's."""
    env = dict(env)
    env.setdefault("TF_USE_LEGACY_KERAS", "1")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")  # TensorFlow's INFO lines left out
    if len(workers) > 1:
        env[WORKERS_ENV] = ",".join(workers)
        if procs == 1:
            env["TF_CONFIG"] = tf_config(workers, rank)
    return env
