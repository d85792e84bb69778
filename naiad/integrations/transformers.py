"""Hugging Face ``Trainer``'s callback for Naiad: its arguments and the model's config as
params, what it logs as metrics at its global step, its checkpoints as artifacts.

    from naiad.integrations.transformers import NaiadCallback

    trainer = Trainer(model=model, args=args, ..., callbacks=[NaiadCallback()])

In a Naiad job it records into the job's run, and the Trainer (through ``accelerate``)
finds the job's torchrun environment itself: nothing in the script changes. Only the
main process records, as the Trainer's own integrations do.
"""

import logging
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from naiad.core.errors import NaiadError
from naiad.integrations.params import flat_params
from naiad.sdk.run import ActiveRun, start_run

log = logging.getLogger("naiad.integrations")
# Arguments that differ between two runs of the same training: not params (a resumed
# job logs its params again, and a run's params cannot change).
_VOLATILE = ("logging_dir", "output_dir", "run_name", "local_rank", "hub_token")


class NaiadCallback(TrainerCallback):
    """Records a ``Trainer``'s run into a Naiad run.

    ``experiment`` and ``run_name`` name a new run (outside a job); ``log_checkpoints``
    uploads each ``checkpoint-N`` folder the Trainer saves under the run's
    ``checkpoints/``.
    """

    def __init__(
        self,
        experiment: str = "Default",
        run_name: str | None = None,
        log_checkpoints: bool = True,
    ) -> None:
        self.experiment, self.run_name, self.log_checkpoints = experiment, run_name, log_checkpoints
        self.run: ActiveRun | None = None

    def on_train_begin(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        model: Any = None,
        **kwargs: Any,
    ) -> None:
        if not state.is_world_process_zero or self.run is not None:
            return
        self.run = start_run(self.experiment, self.run_name)
        params = {k: v for k, v in args.to_dict().items() if k not in _VOLATILE}
        config = getattr(model, "config", None)
        if config is not None and hasattr(config, "to_dict"):
            params["model"] = config.to_dict()
        try:
            self.run.log_params(flat_params(params))
        except NaiadError as exc:  # e.g. a resumed run whose params differ: training goes on
            log.warning("naiad: could not log the Trainer's arguments: %s", exc)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if self.run is None or not state.is_world_process_zero or not logs:
            return
        numbers = {k: float(v) for k, v in logs.items() if isinstance(v, int | float)}
        self.run.log_metrics(numbers, step=state.global_step)

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self.run is None or not state.is_world_process_zero or not self.log_checkpoints:
            return
        folder = Path(args.output_dir or ".") / f"checkpoint-{state.global_step}"
        if folder.is_dir():
            try:
                self.run.log_artifact(folder, f"checkpoints/{folder.name}")
            except NaiadError as exc:
                log.warning("naiad: could not upload %s: %s", folder, exc)

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Send what is still queued; end the run if this callback started it."""
        if self.run is None:
            return
        self.run.flush()
        if self.run.manages_status:
            self.run.end("Completed")
