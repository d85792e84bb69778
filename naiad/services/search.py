"""The search behind a tuning job: an Optuna study rebuilt from Naiad's trial rows.

Nothing of Optuna is stored but what the rows hold (params, outcome, value, intermediate
values, the trials' system attributes), so the study is rebuilt in memory at each turn of
the tuner: a restarted server, or another server taking over, continues the same search.
Optuna is the ``tune`` extra, imported here alone and only when a search is built.
"""

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from naiad.core.errors import InvalidInput
from naiad.schemas.common import ParamValue
from naiad.schemas.tuning import ParameterRange, TuningSpec

if TYPE_CHECKING:
    import optuna

# Optuna's trial state of each outcome; a stopped trial tells the sampler nothing.
_STATES = {"complete": "COMPLETE", "pruned": "PRUNED", "failed": "FAIL", "stopped": "FAIL"}


@dataclass(frozen=True)
class Known:
    """A trial as the search sees it: its row, or an earlier tuning job's (warm start)."""

    number: int
    params: dict[str, ParamValue]
    outcome: str
    value: float | None
    intermediate: Sequence[Sequence[float]]
    attrs: dict[str, Any]


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise InvalidInput(
            "Tuning jobs need Optuna on the server: pip install 'naiad[tune]' and restart it."
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # TPE's constant liar is "experimental" to Optuna; a user can do nothing about it
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def distributions(space: Sequence[ParameterRange]) -> dict[str, Any]:
    dist = _optuna().distributions
    out: dict[str, Any] = {}
    for r in space:
        log = r.scaling == "log"
        if r.type == "categorical":
            out[r.name] = dist.CategoricalDistribution(list(r.values or []))
        elif r.type == "integer":
            out[r.name] = dist.IntDistribution(int(r.min or 0), int(r.max or 0), log=log)
        else:
            out[r.name] = dist.FloatDistribution(float(r.min or 0), float(r.max or 0), log=log)
    return out


def _seed(spec: TuningSpec, number: int) -> int | None:
    """A sampler is built anew for each trial, so its seed moves with the trial's number
    (one seed for all would draw the same point every time)."""
    return None if spec.seed is None else (spec.seed * 1_000_003 + number) % 2**32


def _sampler(spec: TuningSpec, number: int) -> "optuna.samplers.BaseSampler":
    samplers = _optuna().samplers
    seed = _seed(spec, number)
    if spec.strategy == "random":
        return samplers.RandomSampler(seed=seed)
    if spec.strategy == "grid":
        # Not the trial's seed: the grid's points are numbered in an order shuffled by
        # the seed, and the trials' stored grid ids must mean the same points every time.
        grid = {r.name: r.grid() for r in spec.space}
        return samplers.GridSampler(grid, seed=spec.seed)
    if spec.strategy == "cmaes":
        return samplers.CmaEsSampler(seed=seed, n_startup_trials=min(5, spec.max_trials // 2 or 1))
    # Several trials at once: pretend the running ones scored badly, so they are not
    # all sent to the same promising region (TPE's "constant liar").
    return samplers.TPESampler(seed=seed, constant_liar=spec.parallel > 1)


def _pruner(spec: TuningSpec) -> "optuna.pruners.BasePruner":
    pruners = _optuna().pruners
    if spec.early_stopping == "median":
        return pruners.MedianPruner(n_startup_trials=3)
    if spec.early_stopping == "asha":
        return pruners.SuccessiveHalvingPruner()
    if spec.early_stopping == "hyperband":
        return pruners.HyperbandPruner()
    return pruners.NopPruner()


class Search:
    """One turn's view of a tuning job's study: ask for the next trial, judge running ones."""

    def __init__(
        self, name: str, spec: TuningSpec, trials: Sequence[Known], seeds: Sequence[Known] = ()
    ) -> None:
        """``trials``: this job's, in number order; ``seeds``: warm-start trials."""
        optuna = _optuna()
        self.spec = spec
        self.dists = distributions(spec.space)
        self._next = len(trials)
        self.study = optuna.create_study(
            study_name=name,  # Hyperband places trials in brackets by study name and number
            direction=spec.objective.direction,
            sampler=_sampler(spec, self._next),
            pruner=_pruner(spec),
        )
        self._index: dict[int, int] = {}  # trial number -> the study's trial number
        for seed in seeds:
            if seed.outcome in ("complete", "pruned") and self._fits(seed.params):
                self._add(seed)
        for trial in trials:
            self._index[trial.number] = self._add(trial)

    def _fits(self, params: dict[str, ParamValue]) -> bool:
        """Whether an earlier job's point lies in this space (its ranges may differ)."""
        if set(params) != set(self.dists):
            return False
        for r in self.spec.space:
            value = params[r.name]
            if r.type == "categorical":
                if value not in (r.values or []):
                    return False
            elif not isinstance(value, int | float) or not (r.min or 0) <= value <= (r.max or 0):
                return False
        return True

    def _add(self, trial: Known) -> int:
        optuna = _optuna()
        state = optuna.trial.TrialState[_STATES.get(trial.outcome, "RUNNING")]
        value = trial.value if state.name in ("COMPLETE", "PRUNED") else None
        if value is not None and not math.isfinite(value):
            state, value = optuna.trial.TrialState.FAIL, None
        frozen = optuna.trial.create_trial(
            state=state,
            value=value,
            params={k: v for k, v in trial.params.items() if k in self.dists},
            distributions={k: d for k, d in self.dists.items() if k in trial.params},
            intermediate_values={int(s): float(v) for s, v in trial.intermediate},
            system_attrs=dict(trial.attrs),
        )
        self.study.add_trial(frozen)
        return len(self.study.get_trials(deepcopy=False)) - 1

    def ask(self) -> tuple[dict[str, ParamValue], dict[str, Any]]:
        """The next trial's hyperparameters, and the attributes the sampler gave it."""
        trial = self.study.ask(fixed_distributions=self.dists)
        self._index[self._next] = trial.number
        self._next += 1
        frozen = self.study.get_trials(deepcopy=False)[trial.number]
        return dict(trial.params), dict(frozen.system_attrs)

    def should_prune(self, number: int) -> tuple[bool, dict[str, Any]]:
        """The pruner's verdict on a running trial at its last step, and the attributes it
        keeps on the trial (the rungs it reached), to be stored on the trial's row."""
        frozen = self.study.get_trials(deepcopy=False)[self._index[number]]
        if not frozen.intermediate_values:
            return False, dict(frozen.system_attrs)
        prune = bool(self.study.pruner.prune(self.study, frozen))
        return prune, dict(self.study.get_trials(deepcopy=False)[self._index[number]].system_attrs)


def importances(spec: TuningSpec, trials: Sequence[Known]) -> dict[str, float]:
    """How much each hyperparameter explains of the objective (Optuna's fANOVA), over the
    completed trials; empty until there are enough of them to say."""
    done = [t for t in trials if t.outcome == "complete" and t.value is not None]
    if len(done) < 3 or len({repr(t.params) for t in done}) < 2:
        return {}
    optuna = _optuna()
    search = Search("importance", spec.model_copy(update={"strategy": "random"}), done)
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
    try:
        found = optuna.importance.get_param_importances(search.study, evaluator=evaluator)
    except (RuntimeError, ValueError):
        return {}  # e.g. every completed trial scored the same
    return {name: float(share) for name, share in found.items()}
