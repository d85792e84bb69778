"""Tuning jobs: check and store a search; at each turn of the tuner, settle its trials,
stop the unpromising ones, and start the next ones the strategy asks for.

A trial is an ordinary training job. Its row is written in the same transaction as its
job, and the search is rebuilt from the rows at every turn (``services/search.py``), so
a server killed at any point resumes without losing or repeating a trial.
"""

import math
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from naiad.core import principals
from naiad.core.errors import Conflict, InvalidInput, NotFound
from naiad.core.ids import new_id
from naiad.core.status import Status
from naiad.schemas.jobs import JobCreate
from naiad.schemas.models import ModelVersionCreate
from naiad.schemas.tuning import TrialRegister, TuningJobCreate
from naiad.services import jobs as job_service
from naiad.services import models, search
from naiad.store import jobs, tuning
from naiad.store.artifacts import ArtifactStore, safe_path
from naiad.store.tables import JobRow, ModelVersionRow, TuningJobRow, TuningTrialRow, utcnow

Pairs = list[tuple[TuningTrialRow, JobRow | None]]


@dataclass(frozen=True)
class Launcher:
    """What starting a trial's job needs of the server: its store and executor's size."""

    store: ArtifactStore
    slots: int
    nodes: int | None


def submit(session: Session, body: TuningJobCreate, launcher: Launcher) -> TuningJobRow:
    """Check the search and its template now, so no trial fails on what could be seen."""
    search.distributions(body.space)  # Optuna is installed on the server
    if body.output_root is not None:
        safe_path(body.output_root)  # a folder of the store
    try:
        job_service.check(body.template, launcher.store, launcher.slots, launcher.nodes)
    except InvalidInput as exc:
        raise InvalidInput(f"The trials' template: {exc.message}") from None
    names = sorted(r.name for r in body.space)
    for parent in body.warm_start:
        try:
            earlier = tuning.get_row(session, parent)
        except NotFound as exc:
            raise InvalidInput(f"warm_start: {exc.message}") from None
        theirs = sorted(r.name for r in earlier.spec.space)
        if theirs != names:
            raise InvalidInput(
                f"warm_start: tuning job {parent!r} searched {', '.join(theirs)}, this one "
                f"{', '.join(names)}; a warm start needs the same hyperparameters."
            )
        if earlier.spec.objective.metric != body.objective.metric:
            raise InvalidInput(
                f"warm_start: tuning job {parent!r} optimized {earlier.spec.objective.metric!r}, "
                f"this one {body.objective.metric!r}; a warm start needs the same objective."
            )
    return tuning.create(session, body)


def request_stop(row: TuningJobRow) -> None:
    if not Status(row.status).terminal:
        row.stop_requested = True


def known(trial: TuningTrialRow) -> search.Known:
    return search.Known(
        number=trial.number,
        params=trial.params,
        outcome=trial.outcome,
        value=trial.value,
        intermediate=trial.intermediate,
        attrs=trial.attrs,
    )


def _seeds(session: Session, row: TuningJobRow) -> list[search.Known]:
    """The finished trials of the tuning jobs this one starts warm from."""
    out: list[search.Known] = []
    for parent in row.spec.warm_start:
        try:
            earlier = tuning.get_row(session, parent)
        except NotFound:
            continue  # deleted since: the search goes on without it
        out += [known(t) for t, _job in tuning.trials(session, earlier.id)]
    return out


def _search(session: Session, row: TuningJobRow, pairs: Pairs) -> search.Search:
    return search.Search(row.name, row.spec, [known(t) for t, _ in pairs], _seeds(session, row))


def _points(session: Session, run_id: str, metric: str, known: list) -> list[list[float]]:
    """The objective at each step the run logged it (finite values only); ``known`` (what
    the trial holds already) when the series has not grown, so a running trial's series
    is read once per new point, not at every turn."""
    from naiad.store import metrics  # numpy: loaded when first needed, not at server start

    newest = metrics.latest(session, run_id, metric)
    if newest is None:
        return []
    if known and newest == (int(known[-1][0]), len(known)):
        return known
    try:
        series = metrics.read_series(session, run_id, metric)
    except NotFound:
        return []
    return [
        [int(s), float(v)]
        for s, v in zip(series.steps.tolist(), series.values.tolist(), strict=True)
        if math.isfinite(v)
    ]


def _finish(trial: TuningTrialRow, job: JobRow, metric: str) -> None:
    """Settle a trial whose job has ended: its outcome, value and reason."""
    trial.ended_at = job.ended_at or utcnow()
    last = trial.intermediate[-1][1] if trial.intermediate else None
    if trial.outcome == "pruned" and job.status != Status.COMPLETED.value:
        trial.value = last
    elif job.status == Status.COMPLETED.value:  # (one pruned too late ran to its end)
        trial.reason = None
        if last is None:
            trial.outcome = "failed"
            trial.reason = (
                f"The trial completed but its run logged no finite {metric!r}, the objective; "
                "log it from the script (naiad.runtime's log_metric, or a line the objective's "
                "regex matches)."
            )
        else:
            trial.outcome, trial.value = "complete", last
    elif job.status == Status.FAILED.value:
        trial.outcome, trial.reason = "failed", job.status_reason
    else:
        trial.outcome, trial.reason = "stopped", job.status_reason


def _settle(session: Session, row: TuningJobRow, pairs: Pairs) -> None:
    """Bring each unsettled trial up to date with its job: its intermediate values, the
    pruner's verdict while it runs, and its outcome once it has ended."""
    spec = row.spec
    metric = spec.objective.metric
    changed: list[tuple[TuningTrialRow, JobRow]] = []
    for trial, job in pairs:
        if trial.ended_at is not None:
            continue
        if job is None:
            trial.outcome = "failed" if trial.outcome == "running" else trial.outcome
            trial.reason = trial.reason or "Its training job was deleted."
            trial.ended_at = utcnow()
            continue
        if trial.outcome == "running":
            points = _points(session, job.run_id, metric, trial.intermediate)
            if points != trial.intermediate:
                trial.intermediate = points
                changed.append((trial, job))
    if changed and spec.early_stopping != "none":
        # Judged in the study as it stands, every unsettled trial still running in it; a
        # trial that has just ended is judged too, so the rungs it reached are recorded.
        study = _search(session, row, pairs)
        for trial, job in changed:
            prune, attrs = study.should_prune(trial.number)
            trial.attrs = attrs
            if prune and not Status(job.status).terminal and not job.stop_requested:
                step, value = trial.intermediate[-1]
                trial.outcome = "pruned"
                trial.reason = (
                    f"Pruned by early stopping ({spec.early_stopping}): {metric} was "
                    f"{value:.6g} at step {int(step)}, not promising against the other trials."
                )
                jobs.request_stop(job, trial.reason)
    for trial, job in pairs:
        if trial.ended_at is None and job is not None and Status(job.status).terminal:
            _finish(trial, job, metric)


def _ending(row: TuningJobRow, pairs: Pairs, now: datetime) -> tuple[Status, str] | None:
    """Why the search should end now, and with what status, or None while it goes on."""
    spec = row.spec
    failed = [t for t, _ in pairs if t.outcome == "failed"]
    if len(failed) >= spec.max_failed_trials:
        last = failed[-1].reason or "no reason was recorded"
        return Status.FAILED, (
            f"{_trials(len(failed))} failed, which is max_failed_trials; the last (trial "
            f"{failed[-1].number}): {last}"
        )
    if row.stop_requested:
        return Status.STOPPED, "Stop requested."
    if spec.max_runtime_s is not None:
        created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
        if (now - created).total_seconds() >= spec.max_runtime_s:
            done = tuning.best(row, pairs) is not None
            return (Status.COMPLETED if done else Status.STOPPED), (
                f"Reached its time limit (max_runtime_s={spec.max_runtime_s}) after "
                f"{_trials(len(pairs))}."
            )
    if len(pairs) >= spec.max_trials and all(_ended(j) for _, j in pairs):
        if tuning.best(row, pairs) is None:
            return Status.FAILED, (
                f"No trial of {len(pairs)} completed with a value of "
                f"{spec.objective.metric!r}; see the trials' reasons (`naiad tuning show "
                f"{row.name}`)."
            )
        return Status.COMPLETED, f"All {_trials(len(pairs))} ended."
    return None


def _trials(count: int) -> str:
    return f"{count} trial" if count == 1 else f"{count} trials"


def _ended(job: JobRow | None) -> bool:
    return job is None or Status(job.status).terminal


def _launch(
    session: Session, row: TuningJobRow, pairs: Pairs, launcher: Launcher, count: int
) -> None:
    """Ask the strategy for ``count`` more trials and queue their jobs."""
    spec = row.spec
    study = _search(session, row, pairs)
    template = spec.template.model_dump()
    for _ in range(count):
        number = len(pairs)
        params, attrs = study.ask()
        name = f"{row.name}-{number:03d}-{secrets.token_hex(4)}"
        body = JobCreate.model_validate(
            {**template, "name": name, "hyperparameters": {**template["hyperparameters"], **params}}
        )
        output = None if spec.output_root is None else f"{spec.output_root}/{name}/output"
        with principals.acting(row.created_by, row.project):  # the trials are the asker's
            job = job_service.submit(
                session,
                body,
                launcher.store,
                launcher.slots,
                launcher.nodes,
                output,
                tags={"naiad.tuning_job": row.name, "naiad.trial": str(number)},
            )
        trial = TuningTrialRow(
            id=new_id(),
            tuning_job_id=row.id,
            number=number,
            job_id=job.id,
            params=params,
            outcome="running",
            intermediate=[],
            attrs=attrs,
        )
        session.add(trial)
        session.flush()
        pairs.append((trial, job))


def advance(session: Session, row: TuningJobRow, launcher: Launcher) -> None:
    """One turn of a tuning job (the tuner's tick calls this in one transaction)."""
    pairs: Pairs = tuning.trials(session, row.id)
    _settle(session, row, pairs)
    running = [j for _, j in pairs if not _ended(j)]
    if row.status == Status.STOPPING.value:
        if not running:
            ends_as = Status(row.ends_as or Status.STOPPED.value)
            tuning.transition(session, row, ends_as, row.status_reason)
        return
    ending = _ending(row, pairs, datetime.now(UTC))
    if ending is not None:
        status, reason = ending
        if not running:
            tuning.transition(session, row, status, reason)
            return
        for job in running:
            assert job is not None
            jobs.request_stop(job, f"The tuning job {row.name} is ending: {reason}")
        row.ends_as = status.value
        tuning.transition(session, row, Status.STOPPING, reason)
        return
    count = min(row.spec.parallel - len(running), row.spec.max_trials - len(pairs))
    if count > 0:
        try:
            _launch(session, row, pairs, launcher, count)
        except (InvalidInput, Conflict) as exc:
            # e.g. the template's source or a channel was deleted since it was checked
            reason = f"Trial {len(pairs)} could not be submitted: {exc.message}"
            row.ends_as = Status.FAILED.value
            tuning.transition(session, row, Status.STOPPING, reason)
            return
    if row.status == Status.PENDING.value and pairs:
        tuning.transition(session, row, Status.RUNNING, "Trials started.")


_IMPORTANCES: OrderedDict[tuple[str, tuple[tuple[int, float], ...]], dict[str, float]] = (
    OrderedDict()
)


def importances(row: TuningJobRow, pairs: Pairs) -> dict[str, float]:
    """fANOVA's shares (``search.importances``), computed once per set of completed trials:
    a console polling a search pays for it only when a trial completes."""
    done = tuple(
        (t.number, t.value) for t, _ in pairs if t.outcome == "complete" and t.value is not None
    )
    key = (row.id, done)
    if key not in _IMPORTANCES:
        _IMPORTANCES[key] = search.importances(row.spec, [known(t) for t, _ in pairs])
        while len(_IMPORTANCES) > 64:
            _IMPORTANCES.popitem(last=False)
    return _IMPORTANCES[key]


def register_best(
    session: Session, store: ArtifactStore, row: TuningJobRow, body: TrialRegister
) -> ModelVersionRow:
    """Register the model of the best completed trial (or trial ``body.number``)."""
    pairs = tuning.trials(session, row.id)
    if body.number is None:
        chosen = tuning.best(row, pairs)
        if chosen is None:
            raise Conflict(
                f"Tuning job {row.name!r} has no completed trial yet; wait for one "
                f"(`naiad tuning show {row.name}`)."
            )
    else:
        found = [p for p in pairs if p[0].number == body.number]
        if not found:
            raise NotFound(f"Tuning job {row.name!r} has no trial {body.number}.")
        chosen = found[0]
    trial, job = chosen
    if job is None:
        raise Conflict(f"Trial {trial.number}'s training job was deleted; it left no model.")
    version = ModelVersionCreate(job=job.name, description=body.description)
    return models.register(session, store, body.model, version)
