"""What a job's process knows about itself, read once from the job contract's environment.

The contract (directories and variables) is SageMaker's training-container layout,
so the same values are found by name in ``os.environ`` by scripts that import nothing.
"""

import functools
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from naiad.core.errors import InvalidInput


class Hyperparameters(dict[str, Any]):
    """A dict with typed getters that say which hyperparameter is wrong and why."""

    def _get(self, key: str, default: Any, kind: type) -> Any:
        if key not in self:
            if default is ...:
                raise InvalidInput(
                    f"Hyperparameter {key!r} is required; pass it with --hp {key}=VALUE."
                )
            return default
        value = self[key]
        if kind is bool and isinstance(value, str):
            if value.lower() in ("true", "1", "yes"):
                return True
            if value.lower() in ("false", "0", "no"):
                return False
        if kind is int and isinstance(value, float) and not value.is_integer():
            value = str(value)  # refuse to truncate 0.5 to 0: int("0.5") fails below
        try:
            return kind(value)
        except (TypeError, ValueError):
            raise InvalidInput(
                f"Hyperparameter {key!r} is {value!r}, which is not a valid {kind.__name__}."
            ) from None

    def get_int(self, key: str, default: Any = ...) -> int:
        return self._get(key, default, int)

    def get_float(self, key: str, default: Any = ...) -> float:
        return self._get(key, default, float)

    def get_str(self, key: str, default: Any = ...) -> str:
        return self._get(key, default, str)

    def get_bool(self, key: str, default: Any = ...) -> bool:
        return self._get(key, default, bool)


def _path(env: Mapping[str, str], name: str, fallback: Path) -> Path:
    return Path(env[name]) if env.get(name) else fallback


@dataclass(frozen=True)
class Context:
    hyperparameters: Hyperparameters
    channels: dict[str, Path]
    model_dir: Path
    output_dir: Path
    checkpoint_dir: Path
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    num_gpus: int = 0
    job_name: str | None = None
    run_id: str | None = None
    attempt: int = 0
    _run: Any = field(default=None, repr=False, compare=False)

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs and saves by default."""
        return self.rank == 0

    def channel(self, name: str) -> Path:
        if name not in self.channels:
            known = ", ".join(sorted(self.channels)) or "none"
            raise InvalidInput(
                f"This job has no input channel {name!r} (it has: {known}); "
                f"submit it with --input {name}=URI."
            )
        return self.channels[name]

    def write_failure(self, reason: str) -> None:
        """SageMaker's ``output/failure``: the sentence the job's status reason shows when
        this process fails it (rank 0's, as only one reason is shown)."""
        if not self.is_main:
            return
        failure = self.output_dir.parent / "failure"
        failure.parent.mkdir(parents=True, exist_ok=True)
        failure.write_text(reason)

    def log_metrics(
        self, metrics: Mapping[str, float], step: int | None = None, all_ranks: bool = False
    ) -> None:
        """Log to the job's run; only rank 0 logs unless ``all_ranks`` (keys get a rank suffix)."""
        if not self.is_main and not all_ranks:
            return
        run = self.tracking_run()
        if run is None:
            return
        if all_ranks and self.world_size > 1:
            metrics = {f"{k}/rank{self.rank}": v for k, v in metrics.items()}
        run.log_metrics(metrics, step=step)

    def tracking_run(self) -> Any:
        """The job's run in the tracking store (None outside a Naiad job)."""
        if self.run_id is None:
            return None
        if self._run is None:
            from naiad.sdk.run import start_run

            object.__setattr__(self, "_run", start_run(run_id=self.run_id))
        return self._run


def from_environ(env: Mapping[str, str]) -> Context:
    """Build the context from a job's environment (``os.environ`` in a real job)."""
    base = Path(env.get("SM_INPUT_DIR", "input")).parent if env.get("SM_INPUT_DIR") else Path()
    try:
        hyperparameters = Hyperparameters(json.loads(env.get("SM_HPS") or "{}"))
        names = json.loads(env.get("SM_CHANNELS") or "[]")
    except ValueError as exc:
        raise InvalidInput(f"SM_HPS or SM_CHANNELS is not valid JSON: {exc}.") from None
    data_dir = _path(env, "SM_INPUT_DATA_DIR", base / "input" / "data")
    channels = {
        name: _path(env, f"SM_CHANNEL_{name.upper().replace('-', '_')}", data_dir / name)
        for name in names
    }
    return Context(
        hyperparameters=hyperparameters,
        channels=channels,
        model_dir=_path(env, "SM_MODEL_DIR", base / "model"),
        output_dir=_path(env, "SM_OUTPUT_DATA_DIR", base / "output" / "data"),
        checkpoint_dir=_path(env, "NAIAD_CHECKPOINT_DIR", base / "checkpoints"),
        rank=int(env.get("RANK", 0)),
        local_rank=int(env.get("LOCAL_RANK", 0)),
        world_size=int(env.get("WORLD_SIZE", 1)),
        num_gpus=int(env.get("SM_NUM_GPUS", 0)),
        job_name=env.get("NAIAD_JOB_NAME"),
        run_id=env.get("NAIAD_RUN_ID"),
        attempt=int(env.get("NAIAD_ATTEMPT", 0)),
    )


@functools.cache
def context() -> Context:
    """This process's job context, read once."""
    return from_environ(os.environ)
