"""/api/v1/tuning-jobs: start a hyperparameter search, watch its trials, stop it, and
register the best trial's model."""

from typing import Literal

from fastapi import APIRouter, status

from naiad.schemas.models import ModelVersion
from naiad.schemas.tuning import Trial, TrialRegister, TuningJob, TuningJobCreate
from naiad.server.deps import SessionDep, StateDep, VisibleDep
from naiad.services import tuning as tuning_service
from naiad.store import models, tuning

router = APIRouter(prefix="/tuning-jobs", tags=["tuning jobs"])


@router.post("", status_code=status.HTTP_201_CREATED)
def create_tuning_job(body: TuningJobCreate, session: SessionDep, state: StateDep) -> TuningJob:
    launcher = tuning_service.Launcher(state.artifacts, state.slots, state.executor.nodes)
    row = tuning_service.submit(session, body, launcher)
    return tuning.to_schema(session, row)


@router.get("")
def list_tuning_jobs(
    session: SessionDep, visible: VisibleDep, status: str | None = None
) -> list[TuningJob]:
    return [
        tuning.to_schema(session, row) for row in tuning.list_all(session, status, projects=visible)
    ]


@router.get("/{name}")
def get_tuning_job(name: str, session: SessionDep) -> TuningJob:
    return tuning.to_schema(session, tuning.get_row(session, name))


@router.get("/{name}/trials")
def list_trials(
    name: str, session: SessionDep, sort: Literal["number", "objective"] = "number"
) -> list[Trial]:
    """The trials in the order they were asked for, or best objective first."""
    row = tuning.get_row(session, name)
    trials = [tuning.trial_schema(t, j) for t, j in tuning.trials(session, row.id)]
    return tuning.by_objective(row, trials) if sort == "objective" else trials


@router.get("/{name}/importances")
def importances(name: str, session: SessionDep) -> dict[str, float]:
    """Each hyperparameter's share of the objective's variance over the completed trials
    (Optuna's fANOVA); empty until at least three have completed."""
    row = tuning.get_row(session, name)
    return tuning_service.importances(row, tuning.trials(session, row.id))


@router.post("/{name}/stop")
def stop_tuning_job(name: str, session: SessionDep) -> TuningJob:
    """Stop the search: no new trials; the running ones are stopped."""
    row = tuning.get_row(session, name)
    tuning_service.request_stop(row)
    return tuning.to_schema(session, row)


@router.post("/{name}/register", status_code=status.HTTP_201_CREATED)
def register_best(
    name: str, body: TrialRegister, session: SessionDep, state: StateDep
) -> ModelVersion:
    """Register the best completed trial's model (or trial ``number``'s) as a version."""
    row = tuning.get_row(session, name)
    version = tuning_service.register_best(session, state.artifacts, row, body)
    return models.to_version(session, version)
