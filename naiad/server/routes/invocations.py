"""POST /endpoints/{name}/invocations: what users call, forwarded to a replica.

Two doors lead to the same ``invocation``. ``InvocationDoor``, called by the app before
its middleware stack, answers a request that carries the Bearer token before the API framework sees
it: a path match, one pass over the headers, the token compared, the body read, the
forward. Everything else (the console's cookie, a missing or wrong token, a SigV4-signed
SageMaker Runtime call, a user's key) goes on through the middleware and the FastAPI
route below, which answer it as every API route does. With the admin token neither touches
the database on its way: the keeper's routing table says where a request goes, and only a
request for an endpoint the table does not hold reads the store, to tell a missing
endpoint (404) from one not serving yet (503). A user's key is looked up, and their role in
the endpoint's project checked, in the store, off the event loop.
"""

import hmac
import logging

from fastapi import APIRouter, Depends, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import Message, Receive, Scope, Send

from naiad.core.errors import NaiadError
from naiad.core.status import EndpointStatus
from naiad.server.controller.endpoints import EndpointKeeper
from naiad.server.deps import reads_rows, require_token
from naiad.server.errors import UNEXPECTED, error_body, send_error
from naiad.server.limits import too_large
from naiad.server.proxy.inference import Answer, unavailable
from naiad.server.state import AppState
from naiad.store import endpoints
from naiad.store.db import transaction

log = logging.getLogger("naiad.server")

# What a replica sees of a request's headers (SageMaker's custom attributes reach its code).
FORWARDED = ("content-type", "accept", "x-amzn-sagemaker-custom-attributes")
FORWARDED_RAW = tuple(name.encode() for name in FORWARDED)
_PREFIX, _SUFFIX = "/endpoints/", "/invocations"


async def invocation(
    state: AppState, name: str, body: bytes, headers: dict[str, str], variant: str | None = None
) -> Answer:
    """A replica's answer to one request, or why there is none: a 503 saying when to retry,
    or NotFound (raised) for no such endpoint. The SageMaker Runtime API calls this too."""
    answer = None
    keeper = state.services.get(EndpointKeeper)
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


# -- the route: every request the door passes on ------------------------------------------
async def _token(request: Request) -> None:
    """The API's token check, on the event loop (no thread hop on the hot path) unless it
    reads the store (a user's project role, a job's status)."""
    if reads_rows(request):
        await run_in_threadpool(require_token, request, request.app.state.naiad)
    else:
        require_token(request, request.app.state.naiad)


router = APIRouter(tags=["endpoints"], dependencies=[Depends(_token)])


@router.post("/endpoints/{name}/invocations")
async def invoke(name: str, request: Request) -> Response:
    """Run the endpoint's model: the body and Content-Type go to a replica as they are,
    and its answer (status, body, Content-Type, Retry-After) comes back as it is."""
    state: AppState = request.app.state.naiad  # not StateDep: a sync dependency hops threads
    body = await request.body()
    headers = {k: request.headers[k] for k in FORWARDED if k in request.headers}
    answer = await invocation(state, name, body, headers)
    return Response(content=answer.body, status_code=answer.status, headers=answer.headers)


# -- the door: a script's requests, before the framework --------------------------------
Reply = tuple[int, list[tuple[bytes, bytes]], bytes]  # status, headers, body


class InvocationDoor:
    """Answers ``POST /endpoints/NAME/invocations`` with ``Authorization: Bearer <token>``
    (or any unsigned one when auth is off) as the middleware and route would: 503 once the
    home is lost, 413 over the body limit, 404 for no such endpoint, else the replica's
    answer. The app calls it before its middleware stack (``app.NaiadApp``), and the
    server's HTTP protocol before it builds an ASGI request at all (``server.http``)."""

    def __init__(self, state: AppState, max_body_bytes: int) -> None:
        self.state = state
        self.max_body_bytes = max_body_bytes
        self._credential = None if state.token is None else f"Bearer {state.token}".encode()

    def admits(self, authorization: bytes | None, query: bytes) -> bool:
        """Whether a request with these credentials is the door's to answer."""
        if self._credential is None:  # auth off: all but the SageMaker Runtime's signed ones
            return not (authorization or b"").startswith(b"AWS4-") and b"X-Amz-" not in query
        return authorization is not None and hmac.compare_digest(authorization, self._credential)

    async def reply(self, name: str, headers: dict[str, str], body: bytes) -> Reply:
        """The answer to an admitted invocation whose body is within the limit."""
        try:
            lost = self.state.home.lost()
            if lost is not None:
                return _error(503, "home_lost", lost)
            try:
                answer = await invocation(self.state, name, body, headers)
            except NaiadError as exc:
                return _error(exc.status_code, exc.code, exc.message)
        except Exception:  # as the app's own error middleware would answer a bug of ours
            log.exception("answering an invocation of endpoint %s failed", name)
            return _error(500, "internal_error", UNEXPECTED)
        fields = [(b"content-length", b"%d" % len(answer.body))]
        fields += [(k.encode(), v.encode("latin-1")) for k, v in answer.headers.items()]
        return answer.status, fields, answer.body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Whether it answered the ASGI request; if not, nothing of it was read."""
        if scope["type"] != "http" or scope["method"] != "POST":
            return False
        name = endpoint_of(scope["path"])
        if name is None:
            return False
        authorization = None
        length = -1
        headers: dict[str, str] = {}
        for key, value in scope["headers"]:
            if key == b"authorization":
                authorization = value
            elif key == b"content-length":
                length = int(value) if value.isdigit() else -1
            elif key in FORWARDED_RAW:
                headers[key.decode()] = value.decode("latin-1")
        if not self.admits(authorization, scope["query_string"]):
            return False
        if length > self.max_body_bytes:
            await self._too_large(send, str(length))
            return True
        body = await self._body(receive, send)
        if body is None:
            return True  # the client left, or was told its body is too large
        status, fields, answer = await self.reply(name, headers, body)
        await send({"type": "http.response.start", "status": status, "headers": fields})
        await send({"type": "http.response.body", "body": answer})
        return True

    async def _too_large(self, send: Send, size: str) -> None:
        await send_error(send, 413, "payload_too_large", too_large(size, self.max_body_bytes))

    async def _body(self, receive: Receive, send: Send) -> bytes | None:
        """The whole body, or None: the client left, or sent more than the limit (told so)."""
        chunks = []
        size = 0
        more = True
        while more:
            message: Message = await receive()
            if message["type"] != "http.request":
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body_bytes:
                await self._too_large(send, f"over {self.max_body_bytes}")
                return None
            more = message.get("more_body", False)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def endpoint_of(path: str) -> str | None:
    """NAME of ``/endpoints/NAME/invocations``, else None."""
    if not (path.startswith(_PREFIX) and path.endswith(_SUFFIX)):
        return None
    name = path[len(_PREFIX) : -len(_SUFFIX)]
    return name if name and "/" not in name else None


def _error(status: int, code: str, message: str) -> Reply:
    body = error_body(code, message)
    return (
        status,
        [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))],
        body,
    )
