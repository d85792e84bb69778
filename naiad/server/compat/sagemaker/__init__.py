"""The SageMaker API (AWS JSON 1.1): one module per family of operations, each a set of
functions registered on ``operations.registry`` by the operation's name. SageMaker
Runtime shares its signing name, so requests without ``X-Amz-Target`` go to it."""

from starlette.types import Receive, Scope, Send

from naiad.server.compat.awsjson import AwsJsonApp, send_error
from naiad.server.compat.gateway import AwsService
from naiad.server.compat.runtime import runtime_app
from naiad.server.compat.sagemaker import (  # noqa: F401  (they register)
    experiments,
    hosting,
    notebooks,
    packages,
    tags,
    training,
    tuning,
)
from naiad.server.compat.sagemaker.operations import registry
from naiad.server.state import AppState


def sagemaker_service(state: AppState) -> AwsService:
    api, runtime = AwsJsonApp(state, registry), runtime_app(state)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        targeted = any(name == b"x-amz-target" for name, _ in scope["headers"])
        await (api if targeted else runtime)(scope, receive, send)

    return AwsService(app=app, send_error=send_error)
