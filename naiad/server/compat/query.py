"""The AWS calls SageMaker's tools make besides SageMaker's own, on the query protocol
(form-encoded ``Action=...``, XML answers): STS ``GetCallerIdentity`` (the SDK names its
default bucket after the account) and IAM ``GetRole`` / ``SimulatePrincipalPolicy`` (the
SDK checks a role before it uploads). Naiad has one account per install and accepts any
role name, so these answer for it; answers are written through botocore's output shapes.
"""

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from naiad.server.compat.awsjson import Caller, service_model
from naiad.server.compat.gateway import AwsService
from naiad.server.state import AppState

Handler = Callable[[Caller, dict[str, str]], dict[str, Any]]
CREATED = datetime(2026, 1, 1, tzinfo=UTC)  # the account's roles "exist" since then


def _xml(shape: Any, value: Any) -> str:
    kind = shape.type_name
    if kind == "structure":
        return "".join(
            f"<{key}>{_xml(member, value[key])}</{key}>"
            for key, member in shape.members.items()
            if value.get(key) is not None
        )
    if kind == "list":
        return "".join(f"<member>{_xml(shape.member, v)}</member>" for v in value)
    if kind == "timestamp":
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if kind == "boolean":
        return "true" if value else "false"
    return escape(str(value))


def _error(code: str, message: str) -> bytes:
    return (
        f"<ErrorResponse><Error><Type>Sender</Type><Code>{escape(code)}</Code>"
        f"<Message>{escape(message)}</Message></Error>"
        f"<RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    ).encode()


async def send_error(send: Send, status: int, code: str, message: str) -> None:
    await send(
        {"type": "http.response.start", "status": status,
         "headers": [(b"content-type", b"text/xml")]}
    )  # fmt: skip
    await send({"type": "http.response.body", "body": _error(code, message)})


def _get_caller_identity(caller: Caller, params: dict[str, str]) -> dict[str, Any]:
    return {
        "UserId": caller.access_key,
        "Account": caller.account,
        "Arn": f"arn:aws:iam::{caller.account}:user/naiad",
    }


def _get_role(caller: Caller, params: dict[str, str]) -> dict[str, Any]:
    name = params.get("RoleName", "")
    return {
        "Role": {
            "Path": "/",
            "RoleName": name,
            "RoleId": "AROA" + uuid.uuid5(uuid.NAMESPACE_URL, name).hex[:17].upper(),
            "Arn": f"arn:aws:iam::{caller.account}:role/{name}",
            "CreateDate": CREATED,
        }
    }


def _simulate(caller: Caller, params: dict[str, str]) -> dict[str, Any]:
    actions = [v for k, v in sorted(params.items()) if k.startswith("ActionNames.member.")]
    return {
        "EvaluationResults": [
            {"EvalActionName": action, "EvalResourceName": "*", "EvalDecision": "allowed"}
            for action in actions
        ],
        "IsTruncated": False,
    }


def _service(name: str, handlers: dict[str, Handler]) -> AwsService:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        # botocore's model is loaded on the first call (off the loop), not at the start
        model = await run_in_threadpool(service_model, name)
        body = (await receive()).get("body", b"")  # read and checked by the gateway
        params = dict(parse_qsl(body.decode("utf-8", "replace")))
        params.update(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        action = params.get("Action", "")
        handler = handlers.get(action)
        if handler is None:
            await send_error(
                send,
                400,
                "InvalidAction",
                f"Naiad answers {', '.join(sorted(handlers))} of {model.metadata['serviceId']}, "
                f"not {action or 'a request without Action'}.",
            )
            return
        result = handler(scope["naiad.aws"], params)
        shape = model.operation_model(action).output_shape
        text = (
            f'<{action}Response xmlns="{model.metadata["xmlNamespace"]}"><{action}Result>'
            f"{_xml(shape, result)}"
            f"</{action}Result><ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId>"
            f"</ResponseMetadata></{action}Response>"
        )
        await send(
            {"type": "http.response.start", "status": 200,
             "headers": [(b"content-type", b"text/xml")]}
        )  # fmt: skip
        await send({"type": "http.response.body", "body": text.encode()})

    return AwsService(app=app, send_error=send_error, json_errors=False, max_body=1024 * 1024)


def sts_service(state: AppState) -> AwsService:
    return _service("sts", {"GetCallerIdentity": _get_caller_identity})


def iam_service(state: AppState) -> AwsService:
    return _service("iam", {"GetRole": _get_role, "SimulatePrincipalPolicy": _simulate})
