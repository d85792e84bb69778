"""Tuning job wire models: a search space, an objective, a strategy, and the trials.

A tuning job's trials are ordinary training jobs made from one ``JobTemplate``, each with
the template's hyperparameters plus the ones the strategy chose for it.
"""

import math
import re
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from naiad.core.errors import InvalidInput
from naiad.core.names import check_key
from naiad.schemas.common import ParamValue, Timestamp, Wire
from naiad.schemas.jobs import MAX_RUNTIME_S, JobTemplate, MetricDefinition

Strategy = Literal["tpe", "random", "grid", "cmaes"]
EarlyStopping = Literal["none", "median", "asha", "hyperband"]
Direction = Literal["maximize", "minimize"]
# How a trial ended, for the search: Optuna's trial states, less WAITING.
Outcome = Literal["running", "complete", "pruned", "failed", "stopped"]
STRATEGIES: tuple[str, ...] = Strategy.__args__  # type: ignore[attr-defined]
EARLY_STOPPING: tuple[str, ...] = EarlyStopping.__args__  # type: ignore[attr-defined]
MAX_PARAMETERS = 30  # SageMaker's limit on a tuning job's ranges, all kinds together
MAX_CATEGORIES = 30
MAX_TRIALS = 10_000
MAX_PARALLEL = 100
NAME_LENGTH = 32  # SageMaker's HyperParameterTuningJobName; trials add "-NNN-xxxxxxxx"
_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
Category = str | int | float | bool


class ParameterRange(Wire):
    """One hyperparameter of the search: a float range, an integer range, or a set of values.

    ``scaling``: how values are drawn between min and max; ``log`` spreads them evenly
    over orders of magnitude (learning rates), ``auto`` is linear.
    """

    name: str = Field(min_length=1, max_length=256)
    type: Literal["continuous", "integer", "categorical"]
    min: float | None = None
    max: float | None = None
    scaling: Literal["auto", "linear", "log"] = "auto"
    values: list[Category] | None = Field(default=None, min_length=1, max_length=MAX_CATEGORIES)

    @field_validator("name")
    @classmethod
    def _key(cls, name: str) -> str:
        try:
            return check_key(name, "Hyperparameter name")
        except InvalidInput as exc:
            raise ValueError(exc.message) from None

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        name = self.name
        if self.type == "categorical":
            if self.values is None or self.min is not None or self.max is not None:
                raise ValueError(
                    f"categorical {name!r} takes values (a list, e.g. [relu, gelu]), not min/max"
                )
            if len({repr(v) for v in self.values}) != len(self.values):
                raise ValueError(f"categorical {name!r} lists a value more than once")
            if self.scaling != "auto":
                raise ValueError(f"categorical {name!r} has no scaling; leave it out")
            return self
        if self.values is not None:
            raise ValueError(f"{self.type} {name!r} takes min and max, not values")
        if self.min is None or self.max is None:
            raise ValueError(f"{self.type} {name!r} needs both min and max")
        if not (math.isfinite(self.min) and math.isfinite(self.max)):
            raise ValueError(f"{self.type} {name!r} needs finite min and max")
        if self.type == "integer" and (self.min != int(self.min) or self.max != int(self.max)):
            raise ValueError(
                f"integer {name!r} has min {self.min:g} and max {self.max:g}; both must be "
                "whole numbers (use type continuous for a float range)"
            )
        if self.min > self.max or (self.type == "continuous" and self.min == self.max):
            raise ValueError(
                f"{self.type} {name!r} has min {self.min:g} and max {self.max:g}; min must be "
                "below max"
            )
        if self.scaling == "log" and self.min <= 0:
            raise ValueError(
                f"{name!r} is log-scaled, so min must be above 0 (it is {self.min:g}); use "
                "e.g. 1e-5, or linear scaling"
            )
        return self

    def grid(self) -> list[Category] | None:
        """The values a grid search tries, or None when the range is continuous."""
        if self.type == "categorical":
            return list(self.values or [])
        if self.type == "integer":
            return list(range(int(self.min or 0), int(self.max or 0) + 1))
        return None


class Objective(Wire):
    """What a trial is judged by: the last value of a metric its run logged.

    ``regex``: read the metric from the job's log instead (as SageMaker's
    ``MetricDefinitions``); each matching line is one step of it.
    """

    metric: str = Field(min_length=1, max_length=250)
    direction: Direction = "maximize"
    regex: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _valid(self) -> Self:
        try:
            check_key(self.metric, "Objective metric")
        except InvalidInput as exc:
            raise ValueError(exc.message) from None
        if self.regex is not None:
            MetricDefinition(name=self.metric, regex=self.regex)  # one capturing group
        return self


class TuningSpec(BaseModel):
    """What a tuning job row stores of its request (all but the name), checked once."""

    model_config = ConfigDict(frozen=True)

    template: JobTemplate
    space: list[ParameterRange]
    objective: Objective
    strategy: Strategy = "tpe"
    early_stopping: EarlyStopping = "none"
    max_trials: int
    parallel: int = 1
    max_runtime_s: int | None = None
    max_failed_trials: int = 3
    warm_start: list[str] = Field(default_factory=list)
    seed: int | None = None
    output_root: str | None = None


class TuningJobCreate(Wire):
    name: str = Field(
        min_length=1,
        max_length=NAME_LENGTH,
        description="Unique; 1-32 lower-case letters, digits or '-'. Trial jobs are named "
        "NAME-NNN-xxxxxxxx.",
    )
    template: JobTemplate = Field(
        description="The training job each trial runs; the strategy's hyperparameters are "
        "added to (and win over) its own. Its experiment defaults to the tuning job's name."
    )
    space: list[ParameterRange] = Field(min_length=1, max_length=MAX_PARAMETERS)
    objective: Objective
    strategy: Strategy = Field(
        default="tpe",
        description="tpe (Bayesian), random, grid (categorical and integer ranges only), "
        "cmaes (CMA-ES).",
    )
    early_stopping: EarlyStopping = Field(
        default="none",
        description="Stop unpromising trials on their intermediate values (the objective at "
        "each step): median (stop below the median of earlier trials at that step), asha "
        "(asynchronous successive halving), hyperband.",
    )
    max_trials: int | None = Field(
        default=None,
        ge=1,
        le=MAX_TRIALS,
        description="Trials to run in all (default 10; for grid, the grid's size).",
    )
    parallel: int = Field(default=1, ge=1, le=MAX_PARALLEL, description="Trials at once.")
    max_runtime_s: int | None = Field(
        default=None,
        ge=1,
        le=MAX_RUNTIME_S,
        description="Wall-clock limit for the whole search; running trials are stopped then.",
    )
    max_failed_trials: int = Field(
        default=3,
        ge=1,
        le=MAX_TRIALS,
        description="The tuning job fails when this many trials have failed (each after "
        "its template's max_retries).",
    )
    warm_start: list[str] = Field(
        default_factory=list,
        max_length=5,
        description="Earlier tuning jobs over the same hyperparameters whose finished trials "
        "seed the strategy (SageMaker's IdenticalDataAndAlgorithm warm start).",
    )
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1, description="Sampler seed.")
    output_root: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description="A folder of the artifact store under which each trial writes its "
        "outputs, ROOT/<trial job>/output (as SageMaker's S3OutputPath); default "
        "jobs/<trial job>/output.",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not _NAME.fullmatch(name):
            raise ValueError(
                f"tuning job name {name!r} is not valid: use 1-32 lower-case letters, digits "
                "or '-', starting with a letter or digit"
            )
        return name

    @model_validator(mode="after")
    def _search(self) -> Self:
        names = [r.name for r in self.space]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"the space names {', '.join(map(repr, twice))} more than once")
        if self.strategy == "grid":
            continuous = [r.name for r in self.space if r.type == "continuous"]
            if continuous:
                raise ValueError(
                    f"a grid search tries every value, so it takes categorical and integer "
                    f"ranges only; {', '.join(map(repr, continuous))} is continuous (make it "
                    "categorical with the values to try, or use strategy random or tpe)"
                )
            size = math.prod(len(r.grid() or []) for r in self.space)
            if self.max_trials is not None and self.max_trials > size:
                raise ValueError(
                    f"the grid has {size} points, so a grid search runs at most {size} "
                    f"trials; max_trials is {self.max_trials}"
                )
        if self.objective.regex is not None:
            defined = {d.name for d in self.template.metric_definitions}
            if self.objective.metric in defined:
                raise ValueError(
                    f"the objective's regex and the template's metric_definitions both define "
                    f"{self.objective.metric!r}; give it once"
                )
        return self

    def spec(self) -> TuningSpec:
        """The stored request: defaults filled in, the objective's regex a metric definition."""
        template = self.template
        updates: dict[str, object] = {}
        if "experiment" not in template.model_fields_set:
            updates["experiment"] = self.name
        if self.objective.regex is not None:
            definition = MetricDefinition(name=self.objective.metric, regex=self.objective.regex)
            updates["metric_definitions"] = [*template.metric_definitions, definition]
        if updates:
            template = template.model_copy(update=updates)
        max_trials = self.max_trials
        if max_trials is None:
            grid = math.prod(len(r.grid() or []) for r in self.space)
            max_trials = grid if self.strategy == "grid" else 10
        return TuningSpec(
            **self.model_dump(exclude={"name", "template", "max_trials"}),
            template=template,
            max_trials=max_trials,
        )


class TrialCounts(BaseModel):
    running: int = 0
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    stopped: int = 0


class Trial(BaseModel):
    number: int = Field(description="0, 1, 2, ... in the order the strategy chose them.")
    job: str | None = Field(description="The trial's training job (None once it was deleted).")
    run_id: str | None = None
    outcome: Outcome
    status: str | None = Field(default=None, description="The training job's status.")
    reason: str | None = None
    params: dict[str, ParamValue]
    value: float | None = Field(default=None, description="The objective's last value.")
    last_step: int | None = None
    created_at: Timestamp
    ended_at: Timestamp | None = None


class TuningJob(BaseModel):
    name: str
    status: str
    status_reason: str | None = None
    template: JobTemplate
    space: list[ParameterRange]
    objective: Objective
    strategy: Strategy
    early_stopping: EarlyStopping
    max_trials: int
    parallel: int
    max_runtime_s: int | None
    max_failed_trials: int
    warm_start: list[str]
    seed: int | None
    output_root: str | None = None
    counts: TrialCounts
    best: Trial | None = None
    created_at: Timestamp
    ended_at: Timestamp | None = None
    project: str = Field(default="default", description="The project it belongs to.")
    created_by: str | None = Field(
        default=None, description="Its creator: a user, or admin (None: made before users existed)."
    )


class TrialRegister(Wire):
    """Register the model of a tuning job's best trial (or of trial ``number``)."""

    model: str = Field(min_length=1, max_length=63)
    number: int | None = Field(default=None, ge=0)
    description: str = Field(default="", max_length=5000)
