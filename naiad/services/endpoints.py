"""Endpoint use-cases: deploy, update (a rollout), delete, and the endpoint as the API shows it.

Requests only write the desired state (``spec["pending"]``) and a status; the endpoint
keeper (``naiad.server.controller.endpoints``) starts the replicas, switches the traffic
and stops the old ones, recording each step in the endpoint's timeline.
"""

from typing import Any

from sqlalchemy.orm import Session

from naiad.core.errors import Conflict, InvalidInput
from naiad.core.status import EndpointStatus
from naiad.schemas.endpoints import (
    BatchingSpec,
    CaptureSpec,
    Endpoint,
    EndpointCreate,
    EndpointUpdate,
    Replica,
    Transition,
    Variant,
    VariantSpec,
)
from naiad.store import endpoints, models
from naiad.store.tables import EndpointRow

# One machine runs every replica: past this many the processes only compete for cores.
MAX_REPLICAS = 32


def invocation_path(name: str) -> str:
    return f"/endpoints/{name}/invocations"


def _resolve(session: Session, spec: VariantSpec) -> dict[str, Any]:
    row = models.resolve(session, spec.model)
    model, version = models.version_of(session, row.id)
    name = spec.name or f"{model}-v{version}"
    models.check_name(name, "Variant name")
    return {
        "name": name,
        "model": f"{model}:{version}",
        "version_id": row.id,
        "artifact_uri": row.artifact_uri,
        "weight": spec.weight,
        "replicas": spec.replicas,
    }


def resolve_variants(session: Session, specs: list[VariantSpec]) -> list[dict[str, Any]]:
    """Each variant's model resolved to one version, checked as a whole."""
    variants = [_resolve(session, spec) for spec in specs]
    names = [v["name"] for v in variants]
    doubled = sorted({n for n in names if names.count(n) > 1})
    if doubled:
        raise InvalidInput(
            f"Variant names must be unique; {', '.join(doubled)} appears more than once "
            "(two variants serving the same version need a 'name' each)."
        )
    if sum(v["weight"] for v in variants) <= 0:
        raise InvalidInput("The variants' weights add up to 0; give at least one a weight > 0.")
    total = sum(v["replicas"] for v in variants)
    if total > MAX_REPLICAS:
        raise InvalidInput(
            f"That asks for {total} replicas in all; one server runs at most {MAX_REPLICAS}. "
            "Use fewer replicas per variant, or fewer variants."
        )
    return variants


def _assign_keys(
    current: list[dict[str, Any]], new: list[dict[str, Any]], reuse: bool, generation: int
) -> None:
    """Keep the running replicas of a variant that stays the same (same name and version,
    same batching); anything else gets a directory of its own for this rollout."""
    running = {(v["name"], v["version_id"]): v["key"] for v in current}
    for variant in new:
        key = running.get((variant["name"], variant["version_id"])) if reuse else None
        variant["key"] = key or f"{variant['name']}.{generation}"


def create(session: Session, body: EndpointCreate) -> EndpointRow:
    models.check_name(body.name, "Endpoint name")
    variants = resolve_variants(session, body.variants)
    _assign_keys([], variants, reuse=False, generation=1)
    spec = {
        "variants": [],
        "batching": body.batching.model_dump(),
        "capture": body.capture.model_dump(),
        "generation": 1,
        "pending": {
            "variants": variants,
            "batching": body.batching.model_dump(),
            "capture": body.capture.model_dump(),
        },
    }
    count = sum(v["replicas"] for v in variants)
    return endpoints.create(session, body.name, spec, f"Starting {count} replica(s).")


def update(session: Session, name: str, body: EndpointUpdate) -> EndpointRow:
    """Queue a rollout to the new variants and/or batching; the keeper carries it out."""
    row = endpoints.get_row(session, name)
    status = EndpointStatus(row.status)
    if status in (EndpointStatus.CREATING, EndpointStatus.UPDATING):
        raise Conflict(
            f"Endpoint {name!r} is {status.value}; wait until it is InService "
            f"(`naiad endpoints show {name}`), then update it."
        )
    if status == EndpointStatus.DELETING:
        raise Conflict(f"Endpoint {name!r} is being deleted; it cannot be updated.")
    spec = dict(row.spec)
    current = spec.get("variants", [])
    if body.variants is not None:
        variants = resolve_variants(session, body.variants)
    elif current:
        variants = [dict(v) for v in current]
    else:
        raise InvalidInput(f"Endpoint {name!r} serves nothing; give the variants to serve.")
    batching = body.batching.model_dump() if body.batching else spec["batching"]
    capture = body.capture.model_dump() if body.capture else spec["capture"]
    generation = int(spec.get("generation", 1)) + 1
    same_flags = batching == spec["batching"] and capture == spec["capture"]
    _assign_keys(current, variants, reuse=same_flags, generation=generation)
    spec["generation"] = generation
    spec["pending"] = {"variants": variants, "batching": batching, "capture": capture}
    endpoints.set_spec(row, spec)
    described = ", ".join(f"{v['model']} x{v['replicas']}" for v in variants)
    endpoints.transition(session, row, EndpointStatus.UPDATING, f"Rolling out {described}.")
    return row


def delete(session: Session, name: str) -> EndpointRow:
    """Mark for deletion; the keeper stops the replicas, then removes the endpoint."""
    row = endpoints.get_row(session, name)
    endpoints.transition(
        session, row, EndpointStatus.DELETING, "Delete requested; stopping the replicas."
    )
    return row


def to_schema(
    session: Session,
    row: EndpointRow,
    base_url: str,
    live: dict[str, list[Replica]] | None = None,
) -> Endpoint:
    """The endpoint as stored, with its replicas as the keeper sees them right now."""
    live = live or {}
    spec = row.spec

    def variant(v: dict[str, Any]) -> Variant:
        return Variant(
            name=v["name"],
            model=v["model"],
            weight=v["weight"],
            replicas=v["replicas"],
            live=[r for r in live.get(v["key"], []) if r.index < v["replicas"]],
        )

    pending = spec.get("pending") or {}
    return Endpoint(
        name=row.name,
        status=row.status,
        status_reason=row.status_reason,
        url=f"{base_url.rstrip('/')}{invocation_path(row.name)}",
        variants=[variant(v) for v in spec.get("variants", [])],
        pending_variants=[variant(v) for v in pending.get("variants", [])],
        batching=BatchingSpec.model_validate(pending.get("batching") or spec["batching"]),
        capture=CaptureSpec.model_validate(pending.get("capture") or spec["capture"]),
        created_at=row.created_at,
        updated_at=row.updated_at,
        transitions=[
            Transition(status=t.status, reason=t.reason, at=t.at)
            for t in endpoints.transitions(session, row)
        ],
    )
