"""S3's errors: a code S3 clients know, an HTTP status, and a sentence that says what to do.

The body is S3's ``<Error>`` document; a HEAD answer has none (the status says it all).
"""

import logging

from starlette.types import Send

from naiad.core.errors import Conflict, InvalidInput, NaiadError, NotFound
from naiad.server.compat.s3.xml import Node, document, element
from naiad.store.db import disk_full

log = logging.getLogger("naiad.server")


class S3Error(Exception):
    """An error as S3 names it; ``resource`` is the bucket or object it is about."""

    def __init__(self, code: str, message: str, status: int = 400, resource: str = "") -> None:
        super().__init__(message)
        self.code, self.message, self.status, self.resource = code, message, status, resource

    def _fields(self, request_id: str) -> list[Node]:
        fields: list[Node] = [("Code", self.code), ("Message", self.message)]
        if self.resource:
            fields.append(("Resource", self.resource))
        if request_id:
            fields.append(("RequestId", request_id))
        return fields

    def body(self, request_id: str = "") -> bytes:
        """The whole ``<Error>`` document."""
        return document("Error", self._fields(request_id), namespace=False)

    def element(self, request_id: str = "") -> bytes:
        """The ``<Error>`` element alone, to end a 200 already begun."""
        return element(("Error", self._fields(request_id)))


def translate(exc: Exception, resource: str = "") -> S3Error:
    """What S3 says of an error raised below it: the store's refusals keep their sentence,
    a full disk is a 507, anything unexpected a 500 whose cause is in the server log."""
    if isinstance(exc, S3Error):
        return exc
    if isinstance(exc, InvalidInput):
        return S3Error("InvalidArgument", exc.message, 400, resource)
    if isinstance(exc, Conflict):
        return S3Error(
            "InvalidRequest",
            f"{exc.message} (Objects are files here, so a key cannot be both an object and "
            "a folder of other keys.)",
            400,
            resource,
        )
    if isinstance(exc, NotFound):
        return S3Error("NoSuchKey", exc.message, 404, resource)
    if isinstance(exc, NaiadError):
        return S3Error("InvalidRequest", exc.message, exc.status_code, resource)
    if disk_full(exc):
        log.error("S3 write to %s failed: the disk is full (%s)", resource, exc)
        return S3Error(
            "InsufficientStorage",
            "Out of disk space: the artifact store's filesystem is full, so nothing was saved. "
            "Free space (`naiad gc` removes finished jobs' work directories) and retry.",
            507,
            resource,
        )
    log.exception("S3 request on %s failed", resource or "/", exc_info=exc)
    return S3Error(
        "InternalError",
        "The server hit an unexpected error; the server log says why. Retry, or report it.",
        500,
        resource,
    )


def no_such_bucket(bucket: str) -> S3Error:
    return S3Error(
        "NoSuchBucket",
        f"The bucket {bucket!r} does not exist; create it with create_bucket, or list "
        "the buckets with list_buckets.",
        404,
        f"/{bucket}",
    )


def no_such_key(bucket: str, key: str) -> S3Error:
    return S3Error(
        "NoSuchKey", f"The bucket {bucket!r} holds no object {key!r}.", 404, f"/{bucket}/{key}"
    )


def no_such_upload(bucket: str, key: str, upload_id: str) -> S3Error:
    return S3Error(
        "NoSuchUpload",
        f"There is no multipart upload {upload_id!r} of {key!r} in bucket {bucket!r}: it was "
        "completed or aborted, or never created.",
        404,
        f"/{bucket}/{key}",
    )


def precondition_failed(resource: str, what: str = "the preconditions") -> S3Error:
    return S3Error(
        "PreconditionFailed",
        f"At least one of {what} you specified did not hold.",
        412,
        resource,
    )


def invalid_argument(message: str, resource: str = "") -> S3Error:
    return S3Error("InvalidArgument", message, 400, resource)


async def send_error(send: Send, status: int, code: str, message: str) -> None:
    """The gateway's way to refuse a request before it reaches the S3 app."""
    body = S3Error(code, message, status).body()
    headers = [(b"content-type", b"application/xml"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
