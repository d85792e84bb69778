"""The S3-compatible object API over the artifact store (``buckets.py`` says where)."""

from starlette.types import Receive, Scope, Send

from naiad.server.compat.gateway import AwsService
from naiad.server.state import AppState


async def send_error(send: Send, status: int, code: str, message: str) -> None:
    body = (
        f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
        f"<Message>{message}</Message></Error>"
    ).encode()
    headers = [(b"content-type", b"application/xml")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def s3_service(state: AppState) -> AwsService:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send_error(send, 501, "NotImplemented", "S3 is not served yet.")

    return AwsService(app=app, send_error=send_error, json_errors=False, reads_body=False)
