"""/api/v1/models: register versions, move aliases, evaluate, quantize and export versions.

A version in a path is a number, an alias, or ``latest``: ``/models/digits/versions/3``,
``/models/digits/versions/production``.
"""

from typing import Annotated

from fastapi import APIRouter, Body, Query, Request, Response, status

from naiad.schemas.jobs import SourceUploaded, TrainingJob
from naiad.schemas.models import (
    AliasSet,
    Evaluation,
    EvaluationCreate,
    Model,
    ModelExport,
    ModelQuantize,
    ModelVersion,
    ModelVersionCreate,
)
from naiad.server.deps import SessionDep, StateDep, VisibleDep
from naiad.server.uploads import store_archive
from naiad.services import models as model_service
from naiad.store import jobs, models

router = APIRouter(prefix="/models", tags=["models"])


def ref(name: str, version: str) -> str:
    """The path's ``version`` segment as a reference: 3 -> name:3, production -> name@production."""
    if version == "latest":
        return name
    number = version.isascii() and version.isdigit()  # "³" is a digit to isdigit()
    return f"{name}:{version}" if number else f"{name}@{version}"


@router.put("/uploads", status_code=status.HTTP_201_CREATED)
async def upload_model(request: Request, state: StateDep) -> SourceUploaded:
    """A .tar.gz of a model directory (naiad-model.json + model file), stored by content hash."""
    limit = model_service.MAX_MODEL_BYTES
    too_large = f"Model archives are limited to {limit // 2**30} GiB."
    path, size = await store_archive(
        request, state.artifacts, "uploads/models", limit, too_large, "A model upload"
    )
    return SourceUploaded(source_uri=path, size=size)


@router.get("")
def list_models(
    session: SessionDep,
    visible: VisibleDep,
    created_by: Annotated[str | None, Query(max_length=200)] = None,
) -> list[Model]:
    rows = models.list_models(session, created_by, visible)
    return [models.to_model(session, row) for row in rows]


@router.get("/{name}")
def get_model(name: str, session: SessionDep) -> Model:
    return models.to_model(session, models.get_model(session, name))


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_model(name: str, session: SessionDep) -> Response:
    model_service.delete(session, name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{name}/versions", status_code=status.HTTP_201_CREATED)
def register_version(
    name: str, body: ModelVersionCreate, session: SessionDep, state: StateDep
) -> ModelVersion:
    row = model_service.register(session, state.artifacts, name, body)
    return models.to_version(session, row)


@router.get("/{name}/versions")
def list_versions(name: str, session: SessionDep) -> list[ModelVersion]:
    return [models.to_version(session, row) for row in models.list_versions(session, name)]


@router.get("/{name}/versions/{version}")
def get_version(name: str, version: str, session: SessionDep) -> ModelVersion:
    return models.to_version(session, models.resolve(session, ref(name, version)))


@router.put("/{name}/aliases/{alias}")
def set_alias(name: str, alias: str, body: AliasSet, session: SessionDep) -> ModelVersion:
    """Point ``alias`` at a version; endpoints deployed by alias keep the version they run."""
    models.set_alias(session, name, alias, body.version)
    return models.to_version(session, models.get_version(session, name, body.version))


@router.delete("/{name}/aliases/{alias}", status_code=status.HTTP_204_NO_CONTENT)
def delete_alias(name: str, alias: str, session: SessionDep) -> Response:
    models.delete_alias(session, name, alias)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{name}/versions/{version}/evaluations", status_code=status.HTTP_201_CREATED)
def evaluate(
    name: str, version: str, body: EvaluationCreate, session: SessionDep, state: StateDep
) -> Evaluation:
    row = model_service.evaluate(session, state.artifacts, state.slots, ref(name, version), body)
    return model_service.evaluation_schema(session, state.artifacts, row)


@router.get("/{name}/versions/{version}/evaluations")
def list_evaluations(
    name: str, version: str, session: SessionDep, state: StateDep
) -> list[Evaluation]:
    row = models.resolve(session, ref(name, version))
    return [
        model_service.evaluation_schema(session, state.artifacts, e)
        for e in models.evaluations(session, row)
    ]


@router.post("/{name}/versions/{version}/quantize", status_code=status.HTTP_201_CREATED)
def quantize(
    name: str,
    version: str,
    session: SessionDep,
    state: StateDep,
    body: Annotated[ModelQuantize | None, Body()] = None,
) -> TrainingJob:
    """Start the job that makes an int8 copy (dynamic without a body; static or QAT with
    their data); register its output with derived_from."""
    row = model_service.quantize(session, state.artifacts, state.slots, ref(name, version), body)
    return jobs.to_schema(session, row)


@router.post("/{name}/versions/{version}/export", status_code=status.HTTP_201_CREATED)
def export(
    name: str, version: str, body: ModelExport, session: SessionDep, state: StateDep
) -> TrainingJob:
    """Start the job that writes the version as ONNX; register its output with derived_from."""
    row = model_service.export(session, state.artifacts, state.slots, ref(name, version), body)
    return jobs.to_schema(session, row)
