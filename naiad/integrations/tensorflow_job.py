"""A TensorFlow job's process: its TF_CONFIG, Naiad's Keras callback, the script, and a
manifest for the model it saved.

The supervisor gives one process per host its TF_CONFIG; under torchrun (several
processes per host) every process shares one environment, so each sets its own here from
its ``RANK`` and the gang's worker addresses (``NAIAD_TF_WORKERS``), as SageMaker's
TensorFlow container sets it for MultiWorkerMirroredStrategy.

After the script ends well, rank 0 describes the model it left in ``SM_MODEL_DIR`` (a
``.keras`` file, or a SavedModel folder such as ``1/``) in ``naiad-model.json``, so the job's
model registers and serves as a version without a line of Naiad in the script. A folder
that already has a manifest, or holds no model or several, is left as it is.
"""

import contextlib
import os
import runpy
import sys
from pathlib import Path

from naiad.core.tf_config import WORKERS_ENV, tf_config
from naiad.integrations import keras
from naiad.schemas.models import MANIFEST_FILE


def set_tf_config() -> None:
    """This rank's TF_CONFIG, when the job spans several processes and none is set."""
    workers = [w for w in os.environ.get(WORKERS_ENV, "").split(",") if w]
    if len(workers) < 2 or "TF_CONFIG" in os.environ:
        return
    os.environ["TF_CONFIG"] = tf_config(workers, int(os.environ.get("RANK", "0")))


def write_manifest(model_dir: Path) -> str:
    """Describe the one model in ``model_dir``; returns what was done, for the log."""
    from naiad.serving.tf_runtime import manifest_for

    if (model_dir / MANIFEST_FILE).exists():
        return f"{MANIFEST_FILE} is already there"
    try:
        manifest = manifest_for(model_dir)
    except ValueError as exc:
        return f"no {MANIFEST_FILE} written: {exc}"
    tmp = model_dir / f".{MANIFEST_FILE}.tmp"
    tmp.write_text(manifest.model_dump_json(indent=2, exclude_none=True))
    os.replace(tmp, model_dir / MANIFEST_FILE)
    signature = manifest.signature
    assert signature is not None and signature.outputs is not None
    return (
        f"{MANIFEST_FILE} written for {manifest.file} ({manifest.format}: "
        f"{signature.inputs.describe()} -> {signature.outputs.describe()})"
    )


def main(argv: list[str]) -> int:
    """Run ``argv`` (the script and its arguments) as ``python SCRIPT ARGS...`` would."""
    script = argv[0]
    set_tf_config()
    keras.install()
    sys.argv = list(argv)
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as exc:
        if exc.code not in (None, 0):
            raise
    model_dir = os.environ.get("SM_MODEL_DIR")
    if model_dir and os.environ.get("RANK", "0") == "0":
        try:
            print(f"[naiad] {write_manifest(Path(model_dir))}", flush=True)
        except Exception as exc:  # the training is done; registering will say what is missing
            with contextlib.suppress(Exception):
                print(f"[naiad] could not describe the saved model: {exc}", flush=True)
    return 0
