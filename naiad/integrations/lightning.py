"""PyTorch Lightning's ``Logger`` for Naiad: hyperparameters as params, logged values as
metrics at the trainer's step, checkpoints as artifacts.

    from naiad.integrations.lightning import NaiadLogger

    trainer = lightning.Trainer(logger=NaiadLogger(experiment="digits"), ...)

In a Naiad job it records into the job's run, and Lightning's DDP strategy finds the
job's torchrun environment itself (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``...): nothing
in the script changes. Only global rank 0 records, as Lightning's own loggers do.
"""

import logging
from argparse import Namespace
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers.logger import Logger, rank_zero_experiment  # type: ignore[attr-defined]
from lightning.pytorch.utilities import rank_zero_only

from naiad.core.errors import NaiadError
from naiad.integrations.params import flat_params
from naiad.sdk.run import ActiveRun, start_run

log = logging.getLogger("naiad.integrations")
_ENDS = {"success": "Completed", "failed": "Failed", "finished": "Completed"}


class NaiadLogger(Logger):
    """Records a Lightning run into a Naiad run.

    ``experiment`` and ``run_name`` name a new run (outside a job); ``run_id`` attaches to
    an existing one. ``log_checkpoints``: upload each checkpoint ``ModelCheckpoint`` keeps
    (its best and last files) under the run's ``checkpoints/``.
    """

    def __init__(
        self,
        experiment: str = "Default",
        run_name: str | None = None,
        run_id: str | None = None,
        log_checkpoints: bool = True,
    ) -> None:
        super().__init__()
        self._experiment_name, self._run_name, self._run_id = experiment, run_name, run_id
        self._log_checkpoints = log_checkpoints
        self._run: ActiveRun | None = None
        self._uploaded: set[str] = set()

    @property
    def name(self) -> str:
        return self._experiment_name

    @property
    def version(self) -> str:
        """The run's id (where ModelCheckpoint puts its files: ``NAME/RUN_ID/checkpoints``)."""
        return self.experiment.id if getattr(rank_zero_only, "rank", 0) == 0 else ""

    @property
    @rank_zero_experiment
    def experiment(self) -> ActiveRun:
        """The Naiad run (global rank 0); started at the first use."""
        if self._run is None:
            self._run = start_run(self._experiment_name, self._run_name, run_id=self._run_id)
        return self._run

    @rank_zero_only
    def log_hyperparams(self, params: Mapping[str, Any] | Namespace | None = None) -> None:
        if params is None:
            return
        config = vars(params) if isinstance(params, Namespace) else dict(params)
        try:
            self.experiment.log_params(flat_params(config))
        except NaiadError as exc:  # e.g. a resumed run whose params differ: training goes on
            log.warning("naiad: could not log the hyperparameters: %s", exc)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self.experiment.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)

    @rank_zero_only
    def after_save_checkpoint(self, checkpoint_callback: ModelCheckpoint) -> None:
        if not self._log_checkpoints:
            return
        for path in {checkpoint_callback.best_model_path, checkpoint_callback.last_model_path}:
            if not path or not Path(path).is_file():
                continue
            key = f"{path}:{Path(path).stat().st_mtime_ns}"
            if key in self._uploaded:
                continue
            self._uploaded.add(key)
            try:
                self.experiment.log_artifact(path, f"checkpoints/{Path(path).name}")
            except NaiadError as exc:
                log.warning("naiad: could not upload checkpoint %s: %s", path, exc)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Send what is still queued; end the run if this logger started it."""
        if self._run is None:
            return
        self._run.flush()
        if self._run.manages_status:
            self._run.end(_ENDS.get(status, "Failed"))
