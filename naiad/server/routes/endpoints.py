"""/api/v1/endpoints (deploy, update, delete, watch) and POST /endpoints/{name}/invocations.

The invocation route is mounted outside /api/v1, under the same token, and touches no
database on its way: the keeper's routing table says where a request goes. Only a request
for an endpoint the table does not hold reads the store, to tell a missing endpoint (404)
from one that is not serving yet (503).
"""

import logging
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status
from starlette.concurrency import run_in_threadpool

from naiad.core.errors import InvalidInput, NaiadError
from naiad.core.status import EndpointStatus
from naiad.schemas.endpoints import (
    Endpoint,
    EndpointCreate,
    EndpointHistory,
    EndpointMetrics,
    EndpointUpdate,
)
from naiad.server.controller.endpoints import EndpointKeeper
from naiad.server.deps import SessionDep, StateDep, require_token
from naiad.server.proxy.inference import Answer, unavailable
from naiad.server.state import AppState
from naiad.server.traffic import history as endpoint_history
from naiad.services import endpoints as endpoint_service
from naiad.store import endpoints
from naiad.store.db import transaction
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
def list_endpoints(session: SessionDep, state: StateDep, request: Request) -> list[Endpoint]:
    return [_schema(session, state, row, request) for row in endpoints.list_all(session)]


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


# -- the invocation proxy -----------------------------------------------------------------
async def _token(request: Request) -> None:
    """The API's token check, run on the event loop (no thread hop on the hot path)."""
    require_token(request, request.app.state.naiad)


invocations = APIRouter(tags=["endpoints"], dependencies=[Depends(_token)])


def _not_routed(state: AppState, name: str) -> Answer:
    """Why an endpoint is not in the routing table: NotFound, or a 503 saying when to retry."""
    with transaction(state.sessions) as session:
        row = endpoints.get_row(session, name)
        current, reason = EndpointStatus(row.status), row.status_reason
    if current == EndpointStatus.FAILED:
        return unavailable(
            f"Endpoint {name!r} has failed: {reason} Once the cause is fixed, update it with "
            f"the model to serve (`naiad endpoints update {name} --model ...`)."
        )
    if current == EndpointStatus.DELETING:
        return unavailable(f"Endpoint {name!r} is being deleted.")
    if current != EndpointStatus.CREATING:  # the keeper has not checked its replicas yet
        return unavailable(f"Endpoint {name!r} has no healthy replica right now; retry shortly.")
    return unavailable(
        f"Endpoint {name!r} is {current.value}"
        + (f" ({reason.rstrip('.')})" if reason else "")
        + "; retry when it is InService."
    )


@invocations.post("/endpoints/{name}/invocations")
async def invoke(name: str, request: Request) -> Response:
    """Run the endpoint's model: the body and Content-Type go to a replica as they are,
    and its answer (status, body, Content-Type, Retry-After) comes back as it is."""
    state: AppState = request.app.state.naiad  # not StateDep: a sync dependency hops threads
    body = await request.body()
    headers = {k: request.headers[k] for k in FORWARDED if k in request.headers}
    answer = await invocation(state, name, body, headers)
    return Response(content=answer.body, status_code=answer.status, headers=answer.headers)


# What a replica sees of a request's headers (SageMaker's custom attributes reach its code).
FORWARDED = ("content-type", "accept", "x-amzn-sagemaker-custom-attributes")


async def invocation(
    state: AppState, name: str, body: bytes, headers: dict[str, str], variant: str | None = None
) -> Answer:
    """A replica's answer to one request, or why there is none: a 503 saying when to retry,
    or NotFound (raised) for no such endpoint. The SageMaker Runtime API calls this too."""
    answer = None
    keeper = _keeper(state)
    if keeper is not None:
        try:
            answer = await keeper.router.forward(name, body, headers, variant)
        except Exception:
            log.exception("forwarding to endpoint %s failed", name)
            answer = unavailable(f"The server could not forward to endpoint {name!r}; retry.")
    if answer is None:
        try:
            answer = await run_in_threadpool(_not_routed, state, name)
        except NaiadError:
            raise  # NotFound: a 404 with its sentence
        except Exception:
            log.exception("looking up endpoint %s failed", name)
            answer = unavailable(f"The server could not look up endpoint {name!r}; retry.")
    return answer
