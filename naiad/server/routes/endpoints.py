"""/api/v1/endpoints: deploy, update, delete, watch (invocations: ``routes.invocations``)."""

import logging
import time
from typing import Annotated

from fastapi import APIRouter, Query, Request, status

from naiad.core.errors import InvalidInput
from naiad.schemas.endpoints import (
    Endpoint,
    EndpointCreate,
    EndpointHistory,
    EndpointMetrics,
    EndpointUpdate,
)
from naiad.server.controller.endpoints import EndpointKeeper
from naiad.server.deps import SessionDep, StateDep, VisibleDep
from naiad.server.state import AppState
from naiad.server.traffic import history as endpoint_history
from naiad.services import endpoints as endpoint_service
from naiad.store import endpoints
from naiad.store.tables import EndpointRow

log = logging.getLogger("naiad.endpoints")

router = APIRouter(prefix="/endpoints", tags=["endpoints"])


def _keeper(state: AppState) -> EndpointKeeper | None:
    """The endpoint keeper while the app is served (None in an app without its lifespan)."""
    return state.services.get(EndpointKeeper)


def _schema(session: SessionDep, state: AppState, row: EndpointRow, request: Request) -> Endpoint:
    keeper = _keeper(state)
    live = keeper.live(row.name) if keeper else {}
    return endpoint_service.to_schema(session, row, str(request.base_url), live)


@router.post("", status_code=status.HTTP_201_CREATED)
def deploy(
    body: EndpointCreate, session: SessionDep, state: StateDep, request: Request
) -> Endpoint:
    """Create an endpoint; it is Creating until every replica answers, then InService."""
    row = endpoint_service.create(session, body)
    return _schema(session, state, row, request)


@router.get("")
def list_endpoints(
    session: SessionDep,
    state: StateDep,
    request: Request,
    visible: VisibleDep,
    created_by: Annotated[str | None, Query(max_length=200)] = None,
) -> list[Endpoint]:
    rows = endpoints.list_all(session)
    if created_by:
        rows = [row for row in rows if row.created_by == created_by]
    if visible is not None:
        rows = [row for row in rows if row.project in visible]
    return [_schema(session, state, row, request) for row in rows]


@router.get("/{name}")
def get_endpoint(name: str, session: SessionDep, state: StateDep, request: Request) -> Endpoint:
    return _schema(session, state, endpoints.get_row(session, name), request)


@router.patch("/{name}")
def update_endpoint(
    name: str, body: EndpointUpdate, session: SessionDep, state: StateDep, request: Request
) -> Endpoint:
    """Roll out new variants and/or batching: new replicas first, then the traffic, then the
    old replicas drain. Unset fields stay as they are."""
    row = endpoint_service.update(session, name, body)
    return _schema(session, state, row, request)


@router.delete("/{name}", status_code=status.HTTP_202_ACCEPTED)
def delete_endpoint(name: str, session: SessionDep, state: StateDep, request: Request) -> Endpoint:
    """Stop serving: the replicas drain and stop, then the endpoint is gone (404)."""
    row = endpoint_service.delete(session, name)
    return _schema(session, state, row, request)


@router.get("/{name}/metrics")
def endpoint_metrics(
    name: str,
    session: SessionDep,
    state: StateDep,
    window: Annotated[float, Query(gt=0, le=600, description="Seconds the rates cover.")] = 10.0,
    points: Annotated[int, Query(ge=0, le=600, description="History points per variant.")] = 120,
) -> EndpointMetrics:
    """Requests, errors, latency percentiles, batch sizes and queue depth per variant."""
    row = endpoints.get_row(session, name)
    keeper = _keeper(state)
    if keeper is None:
        return EndpointMetrics(endpoint=name, window_s=window, variants=[])
    live = keeper.live(name)
    variants = [
        (v.name, v.model, sum(r.healthy for r in live.get(v.key, []))) for v in row.spec.variants
    ]
    return keeper.book.figures(name, variants, window, points)


@router.get("/{name}/metrics/history")
def endpoint_metrics_history(
    name: str,
    session: SessionDep,
    state: StateDep,
    since: Annotated[
        float, Query(gt=0, le=366 * 86400, description="Seconds back from now.")
    ] = 3600.0,
    step: Annotated[
        int | None,
        Query(ge=60, le=86400, description="Seconds a point sums, a multiple of 60."),
    ] = None,
) -> EndpointHistory:
    """Traffic per variant over hours or days, from the minutes the server saved."""
    if step is not None and step % endpoint_history.MINUTE:
        raise InvalidInput(
            f"step={step} is not a whole number of minutes; use 60, 300, 3600 or another "
            "multiple of 60 seconds."
        )
    row = endpoints.get_row(session, name)
    keeper = _keeper(state)
    unsaved = keeper.book.unsaved(name) if keeper else {}
    step = step or endpoint_history.default_step(since)
    return endpoint_history.read(session, row, unsaved, since, step, time.time())
