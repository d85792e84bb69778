"""A Keras script (``examples/keras-tabular/train.py``, unchanged) run in this process with
Naiad's Keras callback added as a TensorFlow job's runner adds it, logging to the server
in ``NAIAD_URL``: ``python keras_callback.py train.py --epochs N``.

Prints ``BENCH_RESULT {...}`` with what the callback costs, measured inside the process,
which other load on a shared machine moves far less than wall-clock time: seconds in
Keras's train-batch hooks, which the callback switches on (the other callbacks' batch
hooks, such as the progress bar's, then the callback's own work), seconds in the callback's
once-per-fit and per-epoch methods (its run and params, epoch metrics), the CPU seconds
of the SDK's sender thread, and the wall seconds of ``fit`` plus ``evaluate``.
"""

import functools
import json
import runpy
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil
import tf_keras  # tf.keras under TF_USE_LEGACY_KERAS=1, as in a TensorFlow job

from naiad.integrations import keras

SENDER = "naiad-metrics"  # the SDK's pipeline thread


def timed(
    owner: type, name: str, into: dict[str, float], key: str, depth: list[int] | None = None
) -> None:
    """Replace ``owner.name`` by itself, adding the seconds each call takes to ``into[key]``.

    Methods sharing ``depth`` count only their outermost call: ``fit`` validates through
    ``evaluate``, which must not be counted twice.
    """
    method: Callable[..., Any] = getattr(owner, name)
    depth = [0] if depth is None else depth

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        depth[0] += 1
        started = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            depth[0] -= 1
            if depth[0] == 0:
                into[key] += time.perf_counter() - started

    setattr(owner, name, call)


def sender_cpu_s() -> float:
    """CPU seconds of the sender thread so far (0 if it never started)."""
    ids = {t.native_id for t in threading.enumerate() if t.name == SENDER}
    return sum(t.user_time + t.system_time for t in psutil.Process().threads() if t.id in ids)


def main() -> None:
    keras.install()  # what the runner does before the script; patches tf_keras.Model now
    seconds = dict.fromkeys(("fit_s", "hook_s", "callback_batch_s", "callback_other_s"), 0.0)
    training: list[int] = [0]
    for name in ("fit", "evaluate"):  # outside Naiad's wrapper: the whole call
        timed(tf_keras.Model, name, seconds, "fit_s", training)
    for name in ("on_train_batch_begin", "on_train_batch_end"):
        timed(tf_keras.callbacks.CallbackList, name, seconds, "hook_s")
    timed(keras.Callback, "on_train_batch_end", seconds, "callback_batch_s")
    for name in ("on_train_begin", "on_epoch_end", "on_test_end"):
        timed(keras.Callback, name, seconds, "callback_other_s")
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
    result = seconds | {"sender_cpu_s": sender_cpu_s()}
    print("BENCH_RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
