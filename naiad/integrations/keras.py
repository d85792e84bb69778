"""Keras's callback for Naiad: what ``fit`` and ``evaluate`` report, as metrics of a run,
by epoch and by batch, through the SDK's non-blocking pipeline.

    model.fit(x, y, callbacks=[naiad.keras.Callback()])

A Naiad TensorFlow job needs not even that line: its runner calls :func:`install`, which
adds one to every ``fit`` and ``evaluate`` that has none. The callback imports no Keras:
Keras 3 and ``tf.keras`` 2 (``tf_keras``) both call a callback by its methods, and this one
has every method either calls, so one class serves both.

What is recorded (by the chief, rank 0, alone; every worker of a
MultiWorkerMirroredStrategy sees the same values):

* epochs: each of ``fit``'s epoch logs under its Keras name (``loss``, ``val_loss``,
  ``mae``...) at step = the epoch's index (a later ``fit`` from epoch 0 goes on counting);
* batches: ``batch/<name>`` (Keras's running mean over the epoch so far) at step = the
  batch's number over the whole fit, every ``log_every_n_batches`` batches (10);
* ``evaluate`` outside ``fit``: ``eval_<name>`` (step = how many evaluations came before);
* params, once: the optimizer's settings, the loss, epochs, steps per epoch, the number
  of weights.
"""

import contextlib
import functools
import importlib.abc
import importlib.machinery
import importlib.util
import inspect
import logging
import math
import numbers
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

from naiad.core.errors import NaiadError
from naiad.integrations.params import flat_params
from naiad.sdk.run import ActiveRun, start_run

log = logging.getLogger("naiad.integrations")
_KERASES = ("keras", "tf_keras")  # Keras 3, and Keras 2 (tf.keras with TF_USE_LEGACY_KERAS)


def _chief() -> bool:
    return os.environ.get("RANK", "0") == "0"


def _numbers(logs: Mapping[str, Any] | None, prefix: str = "") -> dict[str, float]:
    found: dict[str, float] = {}
    for key, value in (logs or {}).items():
        with contextlib.suppress(TypeError, ValueError):
            number = float(value)
            if math.isfinite(number):
                found[f"{prefix}{key}"] = number
    return found


def _plain(value: Any) -> Any:
    """A config value as a param: numpy's scalars as Python's (a float32 0.001 as 0.001, its
    shortest text); () for what is not one."""
    if isinstance(value, str | bool | int | float) or value is None:
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(str(value))
    return ()


class Callback:
    """Records a Keras model's ``fit`` and ``evaluate`` into a Naiad run: in a Naiad job,
    the job's; elsewhere a new one in ``experiment`` (named ``run_name``), or ``run_id``.

    ``log_every_n_batches``: how often batch metrics are sent (0: never, epochs only). The
    default, 10, keeps what recording adds to each 3 ms batch of a tiny model under 2%
    (docs/benchmarks.md): Keras's own hook calls, which any batch metric turns on, cost
    about 50 us a batch; reading and sending the values, about 25 us more on each batch
    that sends them.
    """

    def __init__(
        self,
        experiment: str = "Default",
        run_name: str | None = None,
        run_id: str | None = None,
        log_every_n_batches: int = 10,
    ) -> None:
        self.experiment, self.run_name, self.run_id = experiment, run_name, run_id
        self.log_every_n_batches = max(0, log_every_n_batches)
        self.model: Any = None
        self.params: dict[str, Any] = {}
        self.run: ActiveRun | None = None
        self.chief = _chief()
        self._batches = 0  # over every fit: the step of batch metrics
        self._evaluations = 0
        self._epoch = -1  # the step of the last epoch's metrics
        self._fitting = False
        self._params_logged = False
        # Keras 2's CallbackList hands over its tensors as they are: converting every batch's
        # logs to numpy would cost each batch more than this callback's own work, so only
        # the values sent are read (float() below), on the batches that send them
        self._supports_tf_logs = True
        self._chief_worker_only = False  # this one checks for itself

    # What both Keras versions call, besides the hooks.
    def set_model(self, model: Any) -> None:
        self.model = model

    def set_params(self, params: Mapping[str, Any]) -> None:
        self.params = dict(params or {})

    def _implements_train_batch_hooks(self) -> bool:
        return self.chief and self.log_every_n_batches > 0

    def _implements_test_batch_hooks(self) -> bool:
        return False

    def _implements_predict_batch_hooks(self) -> bool:
        return False

    def _run(self) -> ActiveRun:
        if self.run is None:
            self.run = start_run(self.experiment, self.run_name, run_id=self.run_id)
        return self.run

    def _log(self, metrics: dict[str, float], step: int) -> None:
        if metrics:
            self._run().log_metrics(metrics, step=step)

    def on_train_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        self._fitting = True
        if not self.chief or self._params_logged:
            return
        self._params_logged = True
        try:
            self._run().log_params(flat_params(self._describe()))
        except NaiadError as exc:  # a resumed run whose params differ: training goes on
            log.warning("naiad: could not log the model's params: %s", exc)

    def _describe(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            k: v for k, v in self.params.items() if k in ("epochs", "steps", "batch_size")
        }
        model = self.model
        optimizer = getattr(model, "optimizer", None)
        if optimizer is not None:
            with contextlib.suppress(Exception):
                config = optimizer.get_config()
                params["optimizer"] = {k: _plain(v) for k, v in config.items() if _plain(v) != ()}
        loss = getattr(model, "loss", None)
        if loss is not None:
            params["loss"] = loss if isinstance(loss, str) else getattr(loss, "name", str(loss))
        with contextlib.suppress(Exception):
            params["weights"] = int(model.count_params())
        return params

    def on_train_end(self, logs: Mapping[str, Any] | None = None) -> None:
        self._fitting = False

    def on_epoch_begin(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        # A second fit from epoch 0 (a fine-tuning stage) goes on after the first's steps.
        self._epoch = max(int(epoch), self._epoch + 1)
        if self.chief:
            self._log(_numbers(logs), self._epoch)

    def on_train_batch_begin(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        pass

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        self._batches += 1
        every = self.log_every_n_batches
        if self.chief and every and self._batches % every == 0:
            self._log(_numbers(logs, "batch/"), self._batches)

    # Keras 2's older names for the train batch hooks.
    on_batch_begin = on_train_batch_begin

    def on_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        pass  # Keras 2 calls on_train_batch_end as well, which records

    def on_test_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        pass

    def on_test_end(self, logs: Mapping[str, Any] | None = None) -> None:
        if self._fitting:  # fit's validation: its val_ values come with the epoch's logs
            return
        if self.chief:
            self._log(_numbers(logs, "eval_"), self._evaluations)
        self._evaluations += 1

    def on_test_batch_begin(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        pass

    def on_test_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        pass

    def on_predict_begin(self, logs: Mapping[str, Any] | None = None) -> None:
        pass

    def on_predict_end(self, logs: Mapping[str, Any] | None = None) -> None:
        pass

    def on_predict_batch_begin(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        pass

    def on_predict_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        pass


_auto: Callback | None = None


def _added(callbacks: Any) -> Any:
    """``callbacks`` with the process's own Callback added, unless it has one already or is
    Keras's CallbackList (``fit`` passing its callbacks on to its validation)."""
    global _auto
    if callbacks is not None and not isinstance(callbacks, Sequence):
        return callbacks
    if any(isinstance(cb, Callback) for cb in callbacks or ()):
        return callbacks
    if _auto is None:
        _auto = Callback()
    return [*(callbacks or ()), _auto]


def _with_callback(method: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(method)

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        bound.arguments["callbacks"] = _added(bound.arguments.get("callbacks"))
        return method(*bound.args, **bound.kwargs)

    call.__naiad__ = True  # type: ignore[attr-defined]
    return call


def patch(keras: ModuleType) -> None:
    """Make ``fit`` and ``evaluate`` of this Keras's ``Model`` add the Callback."""
    model = keras.Model
    for name in ("fit", "evaluate"):
        method = getattr(model, name)
        if not getattr(method, "__naiad__", False):
            setattr(model, name, _with_callback(method))


class _AfterImport(importlib.abc.MetaPathFinder):
    """Patches each Keras as soon as its package has run its ``__init__``: whether the
    script imports ``keras``, ``tf_keras``, or reaches either through ``tf.keras``."""

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name not in _KERASES:
            return None
        sys.meta_path.remove(self)  # find it as Python would without us, once
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        loader = spec.loader if spec is not None else None
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        run = loader.exec_module

        def exec_module(module: ModuleType) -> None:
            run(module)
            try:
                patch(module)
            except Exception as exc:  # a Keras we do not know: train on, unrecorded
                log.warning("naiad: could not add the Keras callback to %s: %s", name, exc)

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def install() -> None:
    """Add the Callback to every ``fit`` and ``evaluate`` without one, in this process:
    Keras versions already imported now, the others when they are."""
    for name in _KERASES:
        if name in sys.modules:
            patch(sys.modules[name])
    if not any(isinstance(finder, _AfterImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport())
