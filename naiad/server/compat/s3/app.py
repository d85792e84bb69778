"""The S3 app behind the gateway: a request's operation is named from botocore's model of
S3 (``routing``), answered by the function ``OPERATIONS`` gives it, and any error is S3's
XML with its status, never a traceback. The gateway has verified the signature; the body
is read (and checked) by the operation that takes one."""

import logging
from collections.abc import Awaitable, Callable
from urllib.parse import quote

import anyio
import anyio.to_thread
from starlette.types import Receive, Scope, Send

from naiad.server.compat import sigv4
from naiad.server.compat.s3 import buckets, listing, multipart, objects, routing
from naiad.server.compat.s3.body import ChunkSigner
from naiad.server.compat.s3.call import Call, Reply
from naiad.server.compat.s3.errors import S3Error, translate
from naiad.server.compat.s3.layout import Volume
from naiad.server.state import AppState
from naiad.store.artifacts.local import LocalArtifactStore

log = logging.getLogger("naiad.server")

Operation = Callable[[Call], Awaitable[Reply]]


async def _head_object(call: Call) -> Reply:
    return await objects.get_object(call, head=True)


OPERATIONS: dict[str, Operation] = {
    "ListBuckets": buckets.list_buckets,
    "CreateBucket": buckets.create_bucket,
    "HeadBucket": buckets.head_bucket,
    "DeleteBucket": buckets.delete_bucket,
    "GetBucketLocation": buckets.get_bucket_location,
    "ListObjectsV2": listing.list_objects_v2,
    "ListObjects": listing.list_objects,
    "PutObject": objects.put_object,
    "GetObject": objects.get_object,
    "HeadObject": _head_object,
    "DeleteObject": objects.delete_object,
    "DeleteObjects": objects.delete_objects,
    "CopyObject": objects.copy_object,
    "CreateMultipartUpload": multipart.create_multipart_upload,
    "UploadPart": multipart.upload_part,
    "UploadPartCopy": multipart.upload_part_copy,
    "CompleteMultipartUpload": multipart.complete_multipart_upload,
    "AbortMultipartUpload": multipart.abort_multipart_upload,
    "ListParts": multipart.list_parts,
    "ListMultipartUploads": multipart.list_multipart_uploads,
}
TRANSFER_THREADS = 64  # S3 transfers at once; they have their own threads (``Call.run``)


def _headers(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in scope["headers"]:
        out.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return out


class S3App:
    """Serves S3 over a local artifact store."""

    def __init__(self, state: AppState, store: LocalArtifactStore) -> None:
        self.volume = Volume(store)
        self.max_object_bytes = state.settings.max_artifact_bytes
        self.limiter: anyio.CapacityLimiter | None = None  # made in the event loop
        self.model_loaded = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        head = scope["method"] == "HEAD"
        call: Call | None = None
        try:
            call = await self._call(scope, receive)
            reply = await self._operation(scope, call)(call)
        except Exception as exc:
            resource = call.target.resource if call else scope.get("path", "")
            error = translate(exc, resource)
            body = b"" if head else error.body(call.request_id if call else "")
            reply = Reply(error.status, {"content-type": "application/xml"}, body)
        await self._send(send, reply, head, call)

    async def _call(self, scope: Scope, receive: Receive) -> Call:
        if not self.model_loaded:
            await anyio.to_thread.run_sync(routing.rules)  # botocore's model, loaded once
            self.model_loaded = True
        if self.limiter is None:
            self.limiter = anyio.CapacityLimiter(TRANSFER_THREADS)
        raw_path = scope.get("raw_path") or quote(scope["path"]).encode()
        headers = _headers(scope)
        payload_hash = scope.get("naiad.aws.payload", "")
        signer = None
        if payload_hash.startswith("STREAMING-") and "UNSIGNED" not in payload_hash:
            signer = self._signer(headers, payload_hash, scope.get("naiad.aws.key"))
        return Call(
            volume=self.volume,
            target=routing.target(raw_path, scope.get("query_string", b"")),
            headers=headers,
            caller=scope["naiad.aws"],
            payload_hash=payload_hash,
            receive=receive,
            max_object_bytes=self.max_object_bytes,
            limiter=self.limiter,
            signer=signer,
        )

    def _operation(self, scope: Scope, call: Call) -> Operation:
        method, target = scope["method"], call.target
        name = routing.operation(method, target.shape, target.query, call.headers, OPERATIONS)
        if name is None:
            raise S3Error(
                "MethodNotAllowed",
                f"The method {method} is not allowed against this resource.",
                405,
                target.resource,
            )
        operation = OPERATIONS.get(name)
        if operation is None:
            raise S3Error(
                "NotImplemented",
                f"Naiad's S3 API does not implement {name}; docs/s3.md lists the operations "
                "it serves.",
                501,
                target.resource,
            )
        return operation

    @staticmethod
    def _signer(
        headers: dict[str, str], payload_hash: str, key: bytes | None
    ) -> ChunkSigner | None:
        """The chunk signatures to check, for a body signed chunk by chunk, with the key the
        gateway verified the request's own signature with (None: no authentication)."""
        if not payload_hash.startswith("STREAMING-AWS4-HMAC-SHA256-PAYLOAD"):
            raise S3Error(
                "NotImplemented",
                f"Naiad does not take bodies signed as {payload_hash}; sign with "
                "AWS4-HMAC-SHA256 (SigV4), as boto3 does.",
                501,
            )
        if key is None:
            return None
        signed = sigv4.parse(headers, "")
        return ChunkSigner(key, signed.amz_date, signed.credential.scope, signed.signature)

    async def _send(self, send: Send, reply: Reply, head: bool, call: Call | None) -> None:
        headers = {**reply.headers, "x-amz-request-id": call.request_id if call else "0"}
        if call is None or call.body_unread:
            headers["connection"] = "close"
        if reply.stream is None and not head:
            headers["content-length"] = str(len(reply.body))
        encoded = [
            (name.encode("latin-1"), value.encode("latin-1", "replace"))
            for name, value in headers.items()
        ]
        await send({"type": "http.response.start", "status": reply.status, "headers": encoded})
        if head or reply.stream is None:
            await send({"type": "http.response.body", "body": b"" if head else reply.body})
            return
        try:
            async for block in reply.stream:
                await send({"type": "http.response.body", "body": block, "more_body": True})
        except OSError as exc:  # the file failed mid-answer: the client sees a short body
            log.warning("S3 answer cut short: %s", exc)
            return
        finally:
            await reply.stream.aclose()  # closes the file
        await send({"type": "http.response.body", "body": b""})
