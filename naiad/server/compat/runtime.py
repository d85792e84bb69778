"""SageMaker Runtime's ``InvokeEndpoint`` (REST: ``POST /endpoints/NAME/invocations``),
over the same front door as Naiad's own invocations, answered as botocore parses it."""

import re

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from naiad.core.errors import NaiadError
from naiad.server.routes.invocations import FORWARDED, invocation
from naiad.server.state import AppState

_INVOKE = re.compile(r"/endpoints/([^/]+)/invocations$")


async def send_error(send: Send, status: int, code: str, message: str, **extra: object) -> None:
    headers = [(b"content-type", b"application/json"), (b"x-amzn-errortype", code.encode())]
    body = orjson.dumps({"__type": code, "message": message, **extra})
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _sentence(body: bytes) -> str:
    """The message of a Naiad error body, or the body itself when it is not one."""
    try:
        parsed = orjson.loads(body)
        if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
            return parsed["message"]
    except orjson.JSONDecodeError:
        pass
    return body[:1000].decode("utf-8", "replace")


def runtime_app(state: AppState) -> ASGIApp:
    """botocore signs SageMaker Runtime requests as ``sagemaker`` too: the SageMaker app
    hands over every request without an ``X-Amz-Target``."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        match = _INVOKE.match(scope["path"])
        if scope["method"] != "POST" or match is None:
            await send_error(
                send,
                400,
                "ValidationError",
                "Naiad's SageMaker Runtime answers InvokeEndpoint (POST "
                "/endpoints/NAME/invocations) only; docs/sagemaker.md lists what it does.",
            )
            return
        name = match.group(1)
        message = await receive()
        body = message.get("body", b"")  # the gateway read and checked the whole body
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        forwarded = {k: headers[k] for k in FORWARDED if k in headers}
        try:
            answer = await invocation(  # the Naiad endpoint is named in lower case
                state, name.lower(), body, forwarded, headers.get("x-amzn-sagemaker-target-variant")
            )
        except NaiadError:
            caller = scope["naiad.aws"]
            await send_error(
                send,
                400,
                "ValidationError",
                f"Endpoint {name} of account {caller.account} not found.",
            )
            return
        if answer.status == 503:
            await send_error(send, 503, "ServiceUnavailable", _sentence(answer.body))
            return
        if answer.status == 400 and answer.headers.get("x-naiad-variant") is None:
            await send_error(send, 400, "ValidationError", _sentence(answer.body))
            return
        if answer.status >= 400:  # the model's own answer: SageMaker's ModelError
            await send_error(
                send,
                424,
                "ModelError",
                f"Received client error ({answer.status}) from primary with message "
                f'"{_sentence(answer.body)}".',
                OriginalStatusCode=answer.status,
                OriginalMessage=_sentence(answer.body),
            )
            return
        reply = [(b"content-type", answer.headers.get("content-type", "application/json").encode())]
        variant = answer.headers.get("x-naiad-variant")
        if variant:
            reply.append((b"x-amzn-invoked-production-variant", variant.encode()))
        if "x-amzn-sagemaker-custom-attributes" in answer.headers:
            attributes = answer.headers["x-amzn-sagemaker-custom-attributes"].encode()
            reply.append((b"x-amzn-sagemaker-custom-attributes", attributes))
        await send({"type": "http.response.start", "status": 200, "headers": reply})
        await send({"type": "http.response.body", "body": answer.body})

    return app
