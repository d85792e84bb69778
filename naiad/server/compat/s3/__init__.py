"""The S3-compatible object API over the artifact store (``store/artifacts/buckets.py`` says where):
boto3's ``s3`` client, and the SageMaker SDK that uploads with it, work against Naiad's one
endpoint URL. docs/s3.md says what is served and how it differs from AWS S3."""

from starlette.types import Receive, Scope, Send

from naiad.server.compat.gateway import AwsService
from naiad.server.compat.s3.errors import S3Error, send_error
from naiad.server.state import AppState
from naiad.store.artifacts.local import LocalArtifactStore


def _elsewhere(state: AppState) -> AwsService:
    """When the artifact store is itself an S3 service, that service is the one to use."""
    uri = state.artifacts.uri
    endpoint = state.settings.s3_endpoint_url
    where = f"the S3 service at {endpoint}" if endpoint else "AWS S3"
    message = (
        f"This Naiad server keeps its artifacts in {uri}, on {where}; use that S3 service "
        "directly (boto3's endpoint_url and its own credentials). Naiad serves the S3 API "
        "only over a local artifact store."
    )

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        error = S3Error("NotImplemented", message, 501)
        body = b"" if scope["method"] == "HEAD" else error.body()
        headers = [(b"content-type", b"application/xml"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 501, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return AwsService(app=app, send_error=send_error, json_errors=False, reads_body=False)


def s3_service(state: AppState) -> AwsService:
    if not isinstance(state.artifacts, LocalArtifactStore):
        return _elsewhere(state)
    from naiad.server.compat.s3.app import S3App

    app = S3App(state, state.artifacts)
    return AwsService(app=app, send_error=send_error, json_errors=False, reads_body=False)
