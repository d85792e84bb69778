"""client.tuning_jobs: search hyperparameters with a script's trials, then register the best.

The compact forms the CLI takes are parsed here, so the SDK accepts them too:
a range ``lr=log:1e-4:1e-1``, ``layers=int:1:4``, ``dropout=float:0:0.5``,
``width=logint:8:512``, ``act=cat:relu,gelu``; an objective ``val_acc:max``.
"""

from __future__ import annotations

import builtins
import math
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from naiad.core.errors import InvalidInput
from naiad.core.status import Status
from naiad.schemas.common import ParamValue
from naiad.schemas.models import ModelVersion
from naiad.schemas.tuning import (
    NAME_LENGTH,
    Category,
    Objective,
    ParameterRange,
    Trial,
    TuningJob,
    TuningJobCreate,
)
from naiad.sdk.http import Transport
from naiad.sdk.jobs import (
    MetricDefinitions,
    TrainingJobs,
    checked,
    template_fields,
    typed_value,
)
from naiad.sdk.sources import Progress, SourcePlan

# What a range may be given as: a ParameterRange, its fields as a mapping, or "NAME=SPEC".
RangeLike = ParameterRange | Mapping[str, Any] | str
SpaceLike = Sequence[RangeLike] | Mapping[str, str | Sequence[Category] | Mapping[str, Any]]

KINDS = "log:MIN:MAX, float:MIN:MAX, int:MIN:MAX, logint:MIN:MAX or cat:A,B,C"
DIRECTIONS = {"max": "maximize", "maximize": "maximize", "min": "minimize", "minimize": "minimize"}
# What a spec file holds: the arguments of TuningJobs.create, less the trials' template
# fields, which go under template.
SPEC_KEYS = (
    "name",
    "script",
    "source",
    "space",
    "objective",
    "strategy",
    "early_stopping",
    "max_trials",
    "parallel",
    "max_runtime_s",
    "max_failed_trials",
    "warm_start",
    "seed",
    "output_root",
    "template",
)
_BOUNDED = {
    "float": ("continuous", "linear"),
    "log": ("continuous", "log"),
    "int": ("integer", "linear"),
    "logint": ("integer", "log"),
}


M = TypeVar("M", bound=BaseModel)


def _problem(option: str, text: str, problem: str) -> InvalidInput:
    return InvalidInput(f"{option} {text}: {problem.rstrip('.')}.")


def _validated(schema: type[M], fields: Mapping[str, Any], option: str, text: str) -> M:
    """``schema`` from ``fields``, or the schema's own sentences about what was typed."""
    try:
        return schema.model_validate(fields)
    except ValidationError as exc:
        problems = []
        for err in exc.errors()[:3]:
            where = ".".join(str(p) for p in err["loc"])
            message = str(err["msg"])
            if message.startswith("Value error, ") or not where:  # it names what it is about
                problems.append(message.removeprefix("Value error, "))
            else:
                problems.append(f"{where}: {message}")
        raise _problem(option, text, "; ".join(problems)) from None


def _number(option: str, text: str, which: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise _problem(option, text, f"{which} {value!r} is not a finite number")
    return number


def _range_problems(option: str, text: str, kind: str, low: float, high: float) -> None:
    """The mistakes a compact range can hold, said in its own terms."""
    if kind in ("int", "logint") and (low != int(low) or high != int(high)):
        raise _problem(
            option, text, f"an integer range needs whole-number bounds (use float:{low:g}:{high:g})"
        )
    if low > high or (kind in ("float", "log") and low == high):
        raise _problem(option, text, f"min ({low:g}) must be below max ({high:g})")
    if kind in ("log", "logint") and low <= 0:
        raise _problem(
            option, text, "a log-scaled range needs min > 0 (e.g. log:1e-5:1, or float:0:1)"
        )


def parse_range(text: str, option: str = "space") -> ParameterRange:
    """``NAME=KIND:...`` as a ParameterRange; ``option`` names where it was typed (for
    the error, e.g. ``--space``). Categories are typed as :func:`typed_value` types them."""
    name, sep, spec = text.partition("=")
    name, spec = name.strip(), spec.strip()
    if not sep or not name:
        raise _problem(option, text, f"write NAME=SPEC, where SPEC is {KINDS}")
    return _parse_spec(name, spec, option, text)


def _parse_spec(name: str, spec: str, option: str, text: str) -> ParameterRange:
    kind, _, rest = spec.partition(":")
    kind = kind.strip().lower()
    fields: dict[str, Any]
    if kind in ("cat", "categorical", "choice"):
        words = [w.strip() for w in rest.split(",")]
        if not rest.strip() or not all(words):
            raise _problem(option, text, "list the values after cat:, separated by commas")
        values = [typed_value(w) for w in words]
        if len({repr(v) for v in values}) != len(values):
            raise _problem(option, text, "a value is listed more than once")
        fields = {"type": "categorical", "values": values}
    elif kind in _BOUNDED:
        bounds = rest.split(":")
        if len(bounds) != 2:
            raise _problem(option, text, f"write {kind}:MIN:MAX, e.g. {name}={kind}:1:10")
        low = _number(option, text, "min", bounds[0].strip())
        high = _number(option, text, "max", bounds[1].strip())
        _range_problems(option, text, kind, low, high)
        kind_type, scaling = _BOUNDED[kind]
        fields = {"type": kind_type, "min": low, "max": high, "scaling": scaling}
    else:
        shown = f"{kind!r} is not a kind of range" if kind else "the kind of range is missing"
        raise _problem(option, text, f"{shown}; use {KINDS}")
    return _validated(ParameterRange, {"name": name, **fields}, option, text)


def _range(item: RangeLike, option: str) -> ParameterRange:
    if isinstance(item, ParameterRange):
        return item
    if isinstance(item, str):
        return parse_range(item, option)
    return _validated(ParameterRange, item, option, str(dict(item)))


def parse_space(space: SpaceLike, option: str = "space") -> list[ParameterRange]:
    """The ranges of a search space, from any mix of the forms it may be written in:
    ``["lr=log:1e-4:1e-1", ParameterRange(...), {"name": ..., "type": ...}]``, or a mapping
    ``{"lr": "log:1e-4:1e-1", "act": ["relu", "gelu"], "layers": {"type": "integer", ...}}``.
    """
    if isinstance(space, str):
        raise InvalidInput(f"{option}: give a list of ranges (or a mapping), not one string.")
    if isinstance(space, Mapping):
        out = []
        for name, spec in space.items():
            shown = f"{name}={spec}"
            if isinstance(spec, ParameterRange):
                out.append(spec)
            elif isinstance(spec, str):
                out.append(_parse_spec(str(name), spec.strip(), option, shown))
            elif isinstance(spec, Mapping):
                out.append(_validated(ParameterRange, {"name": name, **spec}, option, shown))
            else:
                fields = {"name": name, "type": "categorical", "values": list(spec)}
                out.append(_validated(ParameterRange, fields, option, shown))
        return out
    return [_range(item, option) for item in space]


def parse_objective(
    text: str | Objective | Mapping[str, Any], regex: str | None = None, option: str = "objective"
) -> Objective:
    """``METRIC:max`` or ``METRIC:min`` (also ``maximize``/``minimize``) as an Objective;
    ``regex`` reads the metric from the trials' logs instead (one capturing group)."""
    if isinstance(text, Objective):
        if regex is None:
            return text
        return _validated(Objective, {**text.model_dump(), "regex": regex}, option, text.metric)
    if isinstance(text, Mapping):
        fields = dict(text) if regex is None else {**text, "regex": regex}
        way = fields.get("direction")
        if isinstance(way, str) and way.lower() in DIRECTIONS:
            fields["direction"] = DIRECTIONS[way.lower()]
        return _validated(Objective, fields, option, str(dict(text)))
    metric, _, direction = text.strip().rpartition(":")
    if not metric or direction.strip().lower() not in DIRECTIONS:
        example = text.strip() if text.strip() and ":" not in text else "val_acc"
        raise InvalidInput(
            f"{option} {text}: say which way is better, METRIC:max or METRIC:min "
            f"(e.g. {example}:max)."
        )
    fields = {"metric": metric.strip(), "direction": DIRECTIONS[direction.strip().lower()]}
    if regex is not None:
        fields["regex"] = regex
    return _validated(Objective, fields, option, text)


def default_name(script: str) -> str:
    """A tuning job name from a script's name and a short random suffix: objective-3f9a2c."""
    stem = re.sub(r"[^a-z0-9-]+", "-", Path(script).stem.lower()).strip("-") or "tune"
    suffix = secrets.token_hex(3)
    return f"{stem[: NAME_LENGTH - len(suffix) - 1].rstrip('-')}-{suffix}"


def _parse(path: Path, text: str) -> Any:
    """JSON, or YAML when PyYAML is importable (uvicorn[standard], a dependency of Naiad,
    brings it); YAML is a superset of JSON, so it reads both."""
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:
        if path.suffix.lower() in (".yaml", ".yml"):
            raise InvalidInput(
                f"{path} is YAML, but PyYAML is not installed here; pip install pyyaml, or "
                "write the spec as JSON."
            ) from None
        import json

        try:
            return json.loads(text)
        except ValueError as exc:
            raise InvalidInput(f"{path} is not valid JSON: {exc}.") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        reason = " ".join(str(exc).split())
        raise InvalidInput(f"{path} is not valid YAML or JSON: {reason}.") from None


def read_spec(path: str | Path) -> dict[str, Any]:
    """A tuning spec file (YAML or JSON) as the keyword arguments of
    :meth:`TuningJobs.create`: ``client.tuning_jobs.create(**read_spec("tune.yaml"))``.
    Its relative paths (source, local inputs) are made relative to the file's folder."""
    path = Path(path)
    spec = _parse(path, path.expanduser().read_text())
    if not isinstance(spec, dict):
        raise InvalidInput(f"{path} must hold a mapping of the tuning job's fields.")
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        raise InvalidInput(
            f"{path} has {', '.join(map(repr, unknown))}, which a tuning spec does not take; "
            f"it takes {', '.join(SPEC_KEYS)} (the trials' other job fields go under template)."
        )
    base = path.expanduser().resolve().parent
    spec["source"] = str(base / Path(str(spec.get("source", "."))).expanduser())
    template = spec.get("template")
    if template is not None and not isinstance(template, dict):
        raise InvalidInput(f"{path}: template must be a mapping of job fields.")
    if template and isinstance(template.get("inputs"), dict):
        template["inputs"] = {
            channel: where if "://" in str(where) else str(base / Path(str(where)).expanduser())
            for channel, where in template["inputs"].items()
        }
    return spec


def ended(job: TuningJob) -> int:
    """How many of a tuning job's trials have ended, whichever way."""
    c = job.counts
    return c.complete + c.pruned + c.failed + c.stopped


class TuningTimeout(TimeoutError):
    """A tuning job did not end within the time ``wait`` was given."""


class TuningJobHandle:
    """A tuning job: ``wait()``, ``trials()``, ``best()``, ``stop()``, ``register_best()``."""

    def __init__(self, tuning_jobs: TuningJobs, job: TuningJob) -> None:
        self._tuning = tuning_jobs
        self.job = job
        self.name = job.name

    def __repr__(self) -> str:
        return f"TuningJobHandle({self.name!r}, status={self.job.status!r})"

    def refresh(self) -> TuningJob:
        self.job = self._tuning.get(self.name).job
        return self.job

    @property
    def status(self) -> str:
        return self.refresh().status

    def trials(self, sort: str = "number") -> list[Trial]:
        """Every trial so far: in the order they were asked for, or ``sort="objective"``
        (completed trials first, best first: a pruned trial's value is partial)."""
        return self._tuning.trials(self.name, sort)

    def best(self) -> Trial | None:
        """The completed trial with the best objective so far, or None before one completes."""
        return self.refresh().best

    def wait(self, timeout: float | None = None, poll: float = 1.0) -> TuningJob:
        """Block until the tuning job ends (Completed, Failed or Stopped) and return it;
        :class:`TuningTimeout` (a TimeoutError) when it is still going after ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.refresh()
            if Status(job.status).terminal:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise TuningTimeout(
                    f"Tuning job {self.name} is still {job.status} after {timeout:g}s "
                    f"({ended(job)} of {job.max_trials} trials ended); wait "
                    f"again, or stop it with naiad tuning stop {self.name}."
                )
            time.sleep(poll)

    def stop(self) -> TuningJob:
        """No new trials; the running ones are stopped. Returns the tuning job as it is now
        (Stopping until they have)."""
        self.job = self._tuning.stop(self.name).job
        return self.job

    def register_best(
        self, model: str, number: int | None = None, description: str = ""
    ) -> ModelVersion:
        """The best completed trial's model (or trial ``number``'s) as the next version of
        ``model``; its lineage names this tuning job and the trial."""
        return self._tuning.register(self.name, model, number, description)

    def importances(self) -> dict[str, float]:
        """Each hyperparameter's share of the objective's variance (empty until three trials
        have completed)."""
        return self._tuning.importances(self.name)


class TuningJobs:
    def __init__(self, transport: Transport, training_jobs: TrainingJobs) -> None:
        self._t = transport
        self._jobs = training_jobs

    def create(
        self,
        name: str,
        script: str,
        source: str | Path | SourcePlan = ".",
        *,
        space: SpaceLike,
        objective: str | Objective | Mapping[str, Any],
        objective_regex: str | None = None,
        strategy: str = "tpe",
        early_stopping: str = "none",
        max_trials: int | None = None,
        parallel: int = 1,
        max_runtime_s: int | None = None,
        max_failed_trials: int = 3,
        warm_start: Sequence[str] = (),
        seed: int | None = None,
        output_root: str | None = None,
        hyperparameters: Mapping[str, ParamValue] | None = None,
        inputs: Mapping[str, str] | None = None,
        experiment: str | None = None,
        processes_per_node: int | None = None,
        nodes: int | None = None,
        gpus: int | None = None,
        trial_max_runtime_s: int | None = None,
        max_retries: int | None = None,
        priority: int | None = None,
        metric_definitions: MetricDefinitions | None = None,
        environment: Mapping[str, str] | None = None,
        channels: Mapping[str, Mapping[str, Any]] | None = None,
        template: Mapping[str, Any] | None = None,
        progress: Progress | None = None,
    ) -> TuningJobHandle:
        """Snapshot ``source`` and start a search whose trials each run ``script`` from it
        with ``hyperparameters`` plus the values the strategy picks from ``space``.

        ``max_runtime_s`` limits the whole search, ``trial_max_runtime_s`` each trial.
        ``output_root``: a folder of the server's store under which each trial writes
        ``<trial job>/output`` (default ``jobs/<trial job>/output``).
        ``template`` holds further fields of the trials' job template (as in a spec file);
        the arguments win over it, their hyperparameters and inputs added to its own. The
        trials' experiment defaults to the tuning job's name. Everything is checked with
        the server's schema before the source is packed, so a mistake costs no upload.
        """
        base = dict(template or {})
        fields = template_fields(
            entrypoint=script,
            experiment=experiment,
            hyperparameters={**base.pop("hyperparameters", {}), **(hyperparameters or {})},
            inputs={**base.pop("inputs", {}), **(inputs or {})},
            processes_per_node=processes_per_node,
            nodes=nodes,
            gpus=gpus,
            max_runtime_s=trial_max_runtime_s,
            max_retries=max_retries,
            priority=priority,
            metric_definitions=metric_definitions,
            environment=environment,
            channels=channels,
        )
        body = checked(
            TuningJobCreate,
            {
                "name": name,
                "template": {**base, **fields, "source_uri": "pending"},
                "space": parse_space(space),
                "objective": parse_objective(objective, objective_regex),
                "strategy": strategy,
                "early_stopping": early_stopping,
                "max_trials": max_trials,
                "parallel": parallel,
                "max_runtime_s": max_runtime_s,
                "max_failed_trials": max_failed_trials,
                "warm_start": list(warm_start),
                "seed": seed,
                "output_root": output_root,
            },
            "tuning job",
        )
        body.template.source_uri = self._jobs.upload_source(source, progress).source_uri
        # Only what was set: the server fills in the rest, the experiment among it.
        wire = body.model_dump(mode="json", exclude_unset=True)
        created = self._t.request("POST", "/tuning-jobs", json=wire)
        return TuningJobHandle(self, TuningJob.model_validate(created))

    def get(self, name: str) -> TuningJobHandle:
        body = self._t.request("GET", f"/tuning-jobs/{name}")
        return TuningJobHandle(self, TuningJob.model_validate(body))

    def list(self, status: str | None = None) -> builtins.list[TuningJob]:
        """Tuning jobs, newest first; ``status`` keeps those with that status."""
        params = {"status": status} if status else None
        body = self._t.request("GET", "/tuning-jobs", params=params)
        return [TuningJob.model_validate(j) for j in body]

    def trials(self, name: str, sort: str = "number") -> builtins.list[Trial]:
        if sort not in ("number", "objective"):
            raise InvalidInput(f"sort {sort!r} is not one of number, objective.")
        body = self._t.request("GET", f"/tuning-jobs/{name}/trials", params={"sort": sort})
        return [Trial.model_validate(t) for t in body]

    def stop(self, name: str) -> TuningJobHandle:
        body = self._t.request("POST", f"/tuning-jobs/{name}/stop")
        return TuningJobHandle(self, TuningJob.model_validate(body))

    def register(
        self, name: str, model: str, number: int | None = None, description: str = ""
    ) -> ModelVersion:
        """Register the best completed trial's model (or trial ``number``'s) as a version."""
        body = {"model": model, "number": number, "description": description}
        version = self._t.request("POST", f"/tuning-jobs/{name}/register", json=body)
        return ModelVersion.model_validate(version)

    def importances(self, name: str) -> dict[str, float]:
        return self._t.request("GET", f"/tuning-jobs/{name}/importances")
