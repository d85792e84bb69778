"""Endpoint use-cases: deploy, update (a rollout), delete, and the endpoint as the API shows it.

Requests only write the desired state (``spec.pending``) and a status; the endpoint
keeper (``naiad.server.controller.endpoints``) starts the replicas, switches the traffic
and stops the old ones, recording each step in the endpoint's timeline.
"""

import re

from sqlalchemy.orm import Session

from naiad.core.errors import Conflict, InvalidInput
from naiad.core.status import EndpointStatus
from naiad.schemas.endpoints import (
    Endpoint,
    EndpointCreate,
    EndpointSpec,
    EndpointUpdate,
    Replica,
    ResolvedVariant,
    Rollout,
    ScalingEvent,
    Transition,
    Variant,
    VariantSpec,
)
from naiad.store import endpoints, models
from naiad.store.tables import EndpointRow

# One machine runs every replica: past this many the processes only compete for cores.
MAX_REPLICAS = 32
SCALING_EVENTS_SHOWN = 50  # the latest autoscaling decisions an endpoint shows
_VARIANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")  # ASCII: it names directories


def invocation_path(name: str) -> str:
    return f"/endpoints/{name}/invocations"


def _initial_replicas(name: str, spec: VariantSpec) -> int:
    """The fixed count, or where an autoscaled variant starts: ``replicas`` within its bounds,
    and at least 1 so that a deploy proves the model loads (idle, it goes to zero later)."""
    scaling = spec.autoscaling
    if scaling is None:
        return spec.replicas
    if scaling.min_replicas > scaling.max_replicas:
        raise InvalidInput(
            f"Variant {name}: min_replicas ({scaling.min_replicas}) is above max_replicas "
            f"({scaling.max_replicas}); give a max_replicas of at least {scaling.min_replicas}."
        )
    return min(scaling.max_replicas, max(scaling.min_replicas, 1, spec.replicas))


def _most_replicas(v: ResolvedVariant) -> int:
    """What a variant may run at most: its fixed count, or its autoscaling maximum."""
    return v.autoscaling.max_replicas if v.autoscaling else v.replicas


def _resolve(session: Session, spec: VariantSpec, generation: int) -> ResolvedVariant:
    row = models.resolve(session, spec.model)
    model, version = models.version_of(session, row.id)
    name = spec.name or f"{model}-v{version}"
    if not _VARIANT.fullmatch(name):
        raise InvalidInput(
            f"Variant name {name!r} is not valid: use 1-63 letters, digits, '-' or '_', "
            "starting with a letter or digit (SageMaker's AllTraffic is one)."
        )
    return ResolvedVariant(
        name=name,
        key=f"{name}.{generation}",
        model=f"{model}:{version}",
        version_id=row.id,
        artifact_uri=row.artifact_uri,
        weight=spec.weight,
        replicas=_initial_replicas(name, spec),
        autoscaling=spec.autoscaling,
    )


def resolve_variants(
    session: Session, specs: list[VariantSpec], generation: int
) -> list[ResolvedVariant]:
    """Each variant's model resolved to one version, checked as a whole; each gets replicas
    of its own, in a directory named after ``generation``."""
    variants = [_resolve(session, spec, generation) for spec in specs]
    names = [v.name for v in variants]
    doubled = sorted({n for n in names if names.count(n) > 1})
    if doubled:
        raise InvalidInput(
            f"Variant names must be unique; {', '.join(doubled)} appears more than once "
            "(two variants serving the same version need a 'name' each)."
        )
    if sum(v.weight for v in variants) <= 0:
        raise InvalidInput("The variants' weights add up to 0; give at least one a weight > 0.")
    total = sum(_most_replicas(v) for v in variants)
    if total > MAX_REPLICAS:
        raise InvalidInput(
            f"That asks for {total} replicas in all (autoscaled variants count their "
            f"max_replicas); one server runs at most {MAX_REPLICAS}. Use fewer replicas per "
            "variant, or fewer variants."
        )
    return variants


def _reuse_replicas(
    current: list[ResolvedVariant], new: list[ResolvedVariant]
) -> list[ResolvedVariant]:
    """A variant that stays the same (same name and version, same batching) keeps its
    running replicas; the others keep the new directory they got for this rollout."""
    running = {(v.name, v.version_id): v.key for v in current}
    return [v.model_copy(update={"key": running.get((v.name, v.version_id), v.key)}) for v in new]


def create(session: Session, body: EndpointCreate) -> EndpointRow:
    models.check_name(body.name, "Endpoint name")
    variants = resolve_variants(session, body.variants, generation=1)
    spec = EndpointSpec(
        variants=[],
        batching=body.batching,
        capture=body.capture,
        generation=1,
        pending=Rollout(variants=variants, batching=body.batching, capture=body.capture),
    )
    count = sum(v.replicas for v in variants)
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
    spec = row.spec
    generation = spec.generation + 1
    if body.variants is not None:
        variants = resolve_variants(session, body.variants, generation)
    elif spec.variants:
        variants = [v.model_copy(update={"key": f"{v.name}.{generation}"}) for v in spec.variants]
    else:
        raise InvalidInput(f"Endpoint {name!r} serves nothing; give the variants to serve.")
    batching = body.batching or spec.batching
    capture = body.capture or spec.capture
    if batching == spec.batching and capture == spec.capture:
        variants = _reuse_replicas(spec.variants, variants)
    pending = Rollout(variants=variants, batching=batching, capture=capture)
    endpoints.set_spec(row, spec.model_copy(update={"generation": generation, "pending": pending}))
    described = ", ".join(f"{v.model} x{v.replicas}" for v in variants)
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

    def variant(v: ResolvedVariant) -> Variant:
        return Variant(
            name=v.name,
            model=v.model,
            weight=v.weight,
            replicas=v.replicas,
            autoscaling=v.autoscaling,
            live=[r for r in live.get(v.key, []) if r.index < v.replicas],
        )

    shown = spec.pending or spec
    return Endpoint(
        name=row.name,
        status=row.status,
        status_reason=row.status_reason,
        url=f"{base_url.rstrip('/')}{invocation_path(row.name)}",
        variants=[variant(v) for v in spec.variants],
        pending_variants=[variant(v) for v in spec.pending.variants] if spec.pending else [],
        batching=shown.batching,
        capture=shown.capture,
        created_at=row.created_at,
        updated_at=row.updated_at,
        created_by=row.created_by,
        project=row.project,
        transitions=[
            Transition(status=t.status, reason=t.reason, at=t.at)
            for t in endpoints.transitions(session, row)
        ],
        scaling_events=[
            ScalingEvent(
                variant=e.variant,
                from_replicas=e.from_replicas,
                to_replicas=e.to_replicas,
                reason=e.reason,
                at=e.at,
            )
            for e in endpoints.scaling_events(session, row, SCALING_EVENTS_SHOWN)
        ],
    )
