"""/api/v1/experiments"""

from fastapi import APIRouter, status

from naiad.schemas.experiments import Experiment, ExperimentCreate, ExperimentUpdate
from naiad.server.deps import SessionDep, VisibleDep
from naiad.store import experiments

router = APIRouter(prefix="/experiments", tags=["experiments"])


@router.post("", status_code=status.HTTP_201_CREATED)
def create_experiment(body: ExperimentCreate, session: SessionDep) -> Experiment:
    return experiments.create(session, body)


@router.get("")
def list_experiments(session: SessionDep, visible: VisibleDep) -> list[Experiment]:
    return experiments.list_all(session, visible)


@router.get("/{name}")
def get_experiment(name: str, session: SessionDep) -> Experiment:
    return experiments.get(session, name)


@router.patch("/{name}")
def update_experiment(name: str, body: ExperimentUpdate, session: SessionDep) -> Experiment:
    return experiments.update(session, name, body)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_experiment(name: str, session: SessionDep) -> None:
    experiments.delete(session, name)
