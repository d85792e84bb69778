"""Registered models, their versions, aliases and evaluations.

A reference names a version three ways: ``digits`` (the latest), ``digits:3`` and
``digits@production``; every layer resolves it here, so the rules live in one place.
"""

import re

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from naiad.core.errors import InvalidInput, NotFound
from naiad.core.ids import new_id
from naiad.core.refs import MAX_VERSION, parse_ref
from naiad.schemas.models import Lineage, Model, ModelManifest, ModelVersion
from naiad.store.tables import (
    EvaluationRow,
    ModelAliasRow,
    ModelRow,
    ModelVersionRow,
    utcnow,
)

NAME_RULE = "1-63 lower-case letters, digits, '-' or '_', starting with a letter or digit"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


def check_name(name: str, what: str = "Model name") -> None:
    if not _NAME.match(name):
        raise InvalidInput(f"{what} {name!r} is not valid: use {NAME_RULE}.")


def get_model(session: Session, name: str) -> ModelRow:
    row = session.scalar(select(ModelRow).where(ModelRow.name == name))
    if row is None:
        raise NotFound(f"No model named {name!r}; list them with `naiad models ls`.")
    return row


def get_version(session: Session, name: str, version: int) -> ModelVersionRow:
    model = get_model(session, name)
    row = None
    if 1 <= version <= MAX_VERSION:  # past a database integer nothing can match, or bind
        row = session.scalar(
            select(ModelVersionRow).where(
                ModelVersionRow.model_id == model.id, ModelVersionRow.version == version
            )
        )
    if row is None:
        latest = _latest(session, model.id)
        raise NotFound(f"Model {name!r} has no version {version}; its latest is {latest}.")
    return row


def resolve(session: Session, ref: str) -> ModelVersionRow:
    name, version, alias = parse_ref(ref)
    model = get_model(session, name)
    if alias is not None:
        row = session.get(ModelAliasRow, (model.id, alias))
        if row is None:
            known = ", ".join(sorted(_aliases(session, model.id))) or "none yet"
            raise NotFound(
                f"Model {name!r} has no alias {alias!r} (its aliases: {known}); set one with "
                f"`naiad models alias {name} {alias} VERSION`."
            )
        version = row.version
    return get_version(session, name, version or _latest(session, model.id))


def _latest(session: Session, model_id: str) -> int:
    value = session.scalar(
        select(func.max(ModelVersionRow.version)).where(ModelVersionRow.model_id == model_id)
    )
    return int(value or 0)


def _aliases(session: Session, model_id: str) -> dict[str, int]:
    rows = session.scalars(select(ModelAliasRow).where(ModelAliasRow.model_id == model_id))
    return {row.alias: row.version for row in rows}


def create_version(
    session: Session,
    name: str,
    manifest: ModelManifest,
    size_bytes: int,
    artifact_uri: str,
    lineage: Lineage,
    description: str = "",
) -> ModelVersionRow:
    """The next version of ``name`` (creating the model). The unique (model, version)
    constraint turns a concurrent registration into a retryable conflict, never a clash."""
    check_name(name)
    model = session.scalar(select(ModelRow).where(ModelRow.name == name))
    if model is None:
        model = ModelRow(id=new_id(), name=name)
        session.add(model)
        session.flush()
    row = ModelVersionRow(
        id=new_id(),
        model_id=model.id,
        version=_latest(session, model.id) + 1,
        manifest=manifest.model_dump(mode="json"),
        size_bytes=size_bytes,
        artifact_uri=artifact_uri,
        lineage=lineage.model_dump(mode="json"),
        description=description,
    )
    session.add(row)
    session.flush()
    return row


def set_alias(session: Session, name: str, alias: str, version: int) -> None:
    """Point ``alias`` at ``version`` in one statement: readers see the old or the new."""
    check_name(alias, "Alias")
    if alias == "latest" or (alias.isascii() and alias.isdigit()):
        raise InvalidInput(
            f"Alias {alias!r} is reserved: 'latest' and numbers already name versions."
        )
    row = get_version(session, name, version)
    current = session.get(ModelAliasRow, (row.model_id, alias))
    if current is None:
        session.add(ModelAliasRow(model_id=row.model_id, alias=alias, version=version))
    else:
        current.version, current.updated_at = version, utcnow()
    session.flush()


def delete_alias(session: Session, name: str, alias: str) -> None:
    model = get_model(session, name)
    row = session.get(ModelAliasRow, (model.id, alias))
    if row is None:
        raise NotFound(f"Model {name!r} has no alias {alias!r}.")
    session.delete(row)


def to_version(session: Session, row: ModelVersionRow) -> ModelVersion:
    model = session.get(ModelRow, row.model_id)
    assert model is not None
    manifest = ModelManifest.model_validate(row.manifest)
    aliases = sorted(a for a, v in _aliases(session, row.model_id).items() if v == row.version)
    return ModelVersion(
        name=model.name,
        version=row.version,
        format=manifest.format,
        signature=manifest.signature,
        classes=manifest.classes,
        quantization=manifest.quantization,
        size_bytes=row.size_bytes,
        artifact_uri=row.artifact_uri,
        lineage=Lineage.model_validate(row.lineage),
        aliases=aliases,
        description=row.description,
        created_at=row.created_at,
    )


def to_model(session: Session, row: ModelRow) -> Model:
    return Model(
        name=row.name,
        latest_version=_latest(session, row.id),
        aliases=_aliases(session, row.id),
        created_at=row.created_at,
        created_by=row.created_by,
        project=row.project,
    )


def list_models(
    session: Session, created_by: str | None = None, projects: set[str] | None = None
) -> list[ModelRow]:
    query = select(ModelRow).order_by(ModelRow.name)
    if projects is not None:
        query = query.where(ModelRow.project.in_(projects))
    if created_by:
        query = query.where(ModelRow.created_by == created_by)
    return list(session.scalars(query))


def list_versions(session: Session, name: str) -> list[ModelVersionRow]:
    model = get_model(session, name)
    query = (
        select(ModelVersionRow)
        .where(ModelVersionRow.model_id == model.id)
        .order_by(ModelVersionRow.version.desc())
    )
    return list(session.scalars(query))


def delete_model(session: Session, name: str) -> None:
    session.delete(get_model(session, name))


def add_evaluation(
    session: Session, version: ModelVersionRow, job_id: str, uri: str
) -> EvaluationRow:
    row = EvaluationRow(id=new_id(), version_id=version.id, job_id=job_id, input=uri)
    session.add(row)
    session.flush()
    return row


def evaluations(session: Session, version: ModelVersionRow) -> list[EvaluationRow]:
    query = (
        select(EvaluationRow)
        .where(EvaluationRow.version_id == version.id)
        .order_by(EvaluationRow.created_at)
    )
    return list(session.scalars(query))


def version_of(session: Session, version_id: str) -> tuple[str, int]:
    row = session.get(ModelVersionRow, version_id)
    assert row is not None
    model = session.get(ModelRow, row.model_id)
    assert model is not None
    return model.name, row.version
