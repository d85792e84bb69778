"""The AWS JSON 1.1 protocol (``X-Amz-Target: Service.Operation``), driven by botocore's
published service model: each request is validated against the operation's input shape,
each answer is written out through its output shape, so what botocore sends is what is
read and what it parses is what is sent. Operations are plain functions registered by
name (a unit test checks every name is in the model).
"""

import base64
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import ValidationError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from naiad.core.errors import Conflict, InvalidInput, NaiadError, NotFound
from naiad.server.state import AppState

log = logging.getLogger("naiad.server")

CONTENT_TYPE = b"application/x-amz-json-1.1"


class AwsError(Exception):
    """An error as AWS names it (``__type``), with its HTTP status."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def not_found(message: str) -> AwsError:
    """SageMaker answers a missing training job, model or endpoint with this, not a 404:
    its waiters (``endpoint_deleted``) wait for exactly this error."""
    return AwsError("ValidationException", message)


def in_use(message: str) -> AwsError:
    return AwsError("ResourceInUse", message)


@dataclass(frozen=True)
class Caller:
    """Who signed the request, and where it believes it is."""

    access_key: str
    region: str
    account: str

    def arn(self, service: str, resource: str) -> str:
        return f"arn:aws:{service}:{self.region}:{self.account}:{resource}"


@dataclass
class Context:
    state: AppState
    session: Session
    caller: Caller
    # Where the caller reached this server (``http://host:port``, from the signed Host
    # header): the base of the URLs an answer gives back to open in a browser.
    origin: str = ""


Operation = Callable[[Context, dict[str, Any]], dict[str, Any]]


@functools.cache
def service_model(name: str) -> Any:
    """botocore's model of a service (loaded on first use: 0.2 s for SageMaker's)."""
    import botocore.session

    return botocore.session.get_session().get_service_model(name)


class Registry:
    """The operations one service implements, by their model's names (a test checks each
    name is in the model; the model itself is loaded on the first call, not at start)."""

    def __init__(self, service: str, target_prefix: str) -> None:
        self.service, self.prefix = service, target_prefix + "."
        self.operations: dict[str, Operation] = {}

    def operation(self, name: str) -> Callable[[Operation], Operation]:
        def register(function: Operation) -> Operation:
            self.operations[name] = function
            return function

        return register


def _operation_names(service: str) -> list[str]:
    return list(service_model(service).operation_names)


# -- shapes -------------------------------------------------------------------------------


def _from_wire(shape: Any, value: Any) -> Any:
    """JSON as sent -> the Python values botocore's validator expects."""
    kind = shape.type_name
    if value is None:
        return None
    if kind == "structure" and isinstance(value, dict):
        return {
            k: _from_wire(shape.members[k], v) if k in shape.members else v
            for k, v in value.items()
        }
    if kind == "list" and isinstance(value, list):
        return [_from_wire(shape.member, v) for v in value]
    if kind == "map" and isinstance(value, dict):
        return {k: _from_wire(shape.value, v) for k, v in value.items()}
    if kind == "timestamp" and isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if kind == "blob" and isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except ValueError:
            return value  # the validator says it is not a blob
    return value


def _to_wire(shape: Any, value: Any) -> Any:
    """Python values -> JSON by the output shape; members the shape lacks, None and empty
    optional structures are left out (strict clients refuse ``VpcConfig: {}``)."""
    kind = shape.type_name
    if kind == "structure":
        out = {}
        for key, member in shape.members.items():
            if key not in value or value[key] is None:
                continue
            wired = _to_wire(member, value[key])
            if (
                wired == {}
                and member.type_name == "structure"
                and key not in shape.required_members
            ):
                continue
            out[key] = wired
        return out
    if kind == "list":
        return [_to_wire(shape.member, v) for v in value]
    if kind == "map":
        return {k: _to_wire(shape.value, v) for k, v in value.items()}
    if kind == "timestamp":
        if isinstance(value, datetime):
            moment = value if value.tzinfo else value.replace(tzinfo=UTC)
            return round(moment.timestamp(), 3)
        return value
    if kind == "blob" and isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if kind in ("integer", "long") and isinstance(value, float):
        return int(value)
    return value


def parse_input(operation: Any, body: bytes) -> dict[str, Any]:
    """The request's parameters, checked against the operation's input shape."""
    from botocore.validate import ParamValidator

    if not body.strip():
        params: Any = {}
    else:
        try:
            params = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise AwsError("SerializationException", f"The body is not JSON ({exc}).") from None
    if not isinstance(params, dict):
        raise AwsError("SerializationException", "The body must be a JSON object.")
    shape = operation.input_shape
    if shape is None:
        return {}
    params = _from_wire(shape, params)
    report = ParamValidator().validate(params, shape)
    if report.has_errors():
        problems = report.generate_report().replace("\n", " ").strip()
        raise AwsError(
            "ValidationException", problems.removeprefix("Parameter validation failed: ")
        )
    return params


def write_output(operation: Any, result: dict[str, Any]) -> bytes:
    shape = operation.output_shape
    return orjson.dumps(_to_wire(shape, result) if shape is not None else {})


# -- the ASGI app -------------------------------------------------------------------------


def error_body(code: str, message: str) -> bytes:
    return orjson.dumps({"__type": code, "message": message})


async def send_error(send: Send, status: int, code: str, message: str) -> None:
    headers = [(b"content-type", CONTENT_TYPE), (b"x-amzn-errortype", code.encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": error_body(code, message)})


def _aws_error(exc: NaiadError) -> AwsError:
    if isinstance(exc, NotFound):
        return not_found(exc.message)
    if isinstance(exc, Conflict):
        return in_use(exc.message)
    if isinstance(exc, InvalidInput):
        return AwsError("ValidationException", exc.message)
    status = exc.status_code if 400 <= exc.status_code < 600 else 500
    return AwsError(
        "ValidationException" if status < 500 else "InternalFailure", exc.message, status
    )


def _origin(scope: Scope) -> str:
    """``scheme://host[:port]`` as the client addressed this server (its Host header, which
    SigV4 signs), or the address it listens on when a request has no Host."""
    host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
    if not host and scope.get("server"):
        address, port = scope["server"]
        host = f"{address}:{port}" if port else str(address)
    return f"{scope.get('scheme', 'http')}://{host}" if host else ""


class AwsJsonApp:
    """Answers one AWS JSON 1.1 service: ``scope["naiad.aws"]`` is the verified caller,
    set by the gateway; the body has been read by it too."""

    def __init__(self, state: AppState, registry: Registry) -> None:
        self.state, self.registry, self.prefix = state, registry, registry.prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        target = headers.get(b"x-amz-target", b"").decode("latin-1")
        if scope["method"] != "POST" or not target.startswith(self.prefix):
            await send_error(
                send,
                400,
                "UnknownOperationException",
                f"Send a POST with 'X-Amz-Target: {self.prefix}<Operation>' (AWS JSON 1.1).",
            )
            return
        name = target[len(self.prefix) :]
        function = self.registry.operations.get(name)
        if function is None:
            message = (
                f"Naiad does not implement {self.prefix}{name}; docs/sagemaker.md lists the "
                "operations it does."
            )
            names = await run_in_threadpool(_operation_names, self.registry.service)
            if name not in names:
                message = f"{self.prefix}{name} is not an operation of this service."
            await send_error(send, 400, "UnknownOperationException", message)
            return
        body = b""
        while True:
            message_ = await receive()
            body += message_.get("body", b"")
            if not message_.get("more_body"):
                break
        try:
            answer = await run_in_threadpool(
                self._call, name, function, body, scope["naiad.aws"], _origin(scope)
            )
        except AwsError as exc:
            await send_error(send, exc.status, exc.code, exc.message)
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", CONTENT_TYPE)],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    def _call(
        self, name: str, function: Operation, body: bytes, caller: Caller, origin: str = ""
    ) -> bytes:
        operation = service_model(self.registry.service).operation_model(name)
        params = parse_input(operation, body)
        try:
            with self.state.sessions() as session, session.begin():
                result = function(Context(self.state, session, caller, origin), params)
        except NaiadError as exc:
            raise _aws_error(exc) from None
        except ValidationError as exc:  # a value the Naiad object it maps to cannot hold
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in exc.errors()
            )
            raise AwsError("ValidationException", problems) from None
        except AwsError:
            raise
        except Exception:
            log.exception("%s%s failed", self.prefix, name)
            raise AwsError(
                "InternalFailure", f"{name} failed on the server; the server log says why.", 500
            ) from None
        return write_output(operation, result)
