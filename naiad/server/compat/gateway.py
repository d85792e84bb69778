"""The door of the AWS-compatible APIs: a request signed with SigV4 is verified here and
handed to the service its credential scope names (``.../sagemaker/aws4_request``), on any
path, and an S3 URL presigned with the older signature (``sigv2``) to S3; everything else
goes on to Naiad's own routes. So one endpoint URL serves boto3's
``sagemaker``, ``sagemaker-runtime`` and ``s3`` clients alike, and Naiad's API and console.
"""

import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from naiad.core import principals
from naiad.core.principals import ADMIN_PRINCIPAL, Principal
from naiad.server import permissions
from naiad.server.audit import note_actor
from naiad.server.compat import sigv2, sigv4
from naiad.server.compat.awsjson import Caller
from naiad.server.compat.keys import KeyBook
from naiad.server.home import HomeWatch

log = logging.getLogger("naiad.server")

SendError = Callable[[Send, int, str, str], Awaitable[None]]
# What S3 calls each problem; the JSON services have names of their own.
_JSON_CODES = {
    "SignatureDoesNotMatch": "InvalidSignatureException",
    "RequestTimeTooSkewed": "InvalidSignatureException",
    "AccessDenied": "AccessDeniedException",
    "AuthorizationQueryParametersError": "IncompleteSignature",
    "InvalidAccessKeyId": "UnrecognizedClientException",
    "XAmzContentSHA256Mismatch": "InvalidSignatureException",
}


@dataclass(frozen=True)
class AwsService:
    """One AWS API Naiad answers: its ASGI app and how it words an error.

    ``reads_body``: the gateway reads the whole body (bounded by ``max_body``) to check its
    hash before the app runs; S3 streams its bodies and checks them itself against
    ``scope["naiad.aws.payload"]``.
    """

    app: ASGIApp
    send_error: SendError
    json_errors: bool = True
    reads_body: bool = True
    max_body: int = 16 * 1024 * 1024


def account_id(home_id: str) -> str:
    """A 12-digit AWS-style account number, one per Naiad home."""
    digest = hashlib.sha256(home_id.encode()).hexdigest()
    return str(int(digest[:12], 16) % 10**12).zfill(12)


def _aws_shaped(scope: Scope) -> bool:
    """Whether a request may be an AWS call (a signature, or an ``X-Amz-Target``), judged on
    the raw bytes: the front door's invocations pass through without a header decoded."""
    query = scope.get("query_string", b"")
    if b"X-Amz-" in query or b"AWSAccessKeyId=" in query:
        return True
    return any(
        (name == b"authorization" and value.startswith(b"AWS4-")) or name == b"x-amz-target"
        for name, value in scope["headers"]
    )


def _headers(scope: Scope) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in scope["headers"]:
        out.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
    return out


class AwsGateway:
    """Outermost middleware: SigV4 requests to their service, the rest to ``app``."""

    def __init__(
        self,
        app: ASGIApp,
        services: dict[str, AwsService],
        keys: KeyBook | None,
        account: str,
        unsigned_error: SendError,
        home: HomeWatch,
    ) -> None:
        self.app, self.services, self.keys, self.account = app, services, keys, account
        self.unsigned_error, self.home = unsigned_error, home

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _aws_shaped(scope):
            await self.app(scope, receive, send)  # Naiad's own routes: nothing decoded here
            return
        headers = _headers(scope)
        first = {k: v[0] for k, v in headers.items()}
        query = scope.get("query_string", b"").decode("latin-1")
        refuse = _closing(send)  # a refusal leaves the body unread: end the connection
        if sigv2.is_presigned(query) and "s3" in self.services:
            await self._presigned_v2(scope, receive, send, headers, query)
            return
        if not sigv4.is_signed(first, query):
            if "x-amz-target" in first:  # an AWS JSON call without credentials
                await self.unsigned_error(
                    refuse,
                    400,
                    "MissingAuthenticationTokenException",
                    "The request is not signed: give the client an access key "
                    "(`naiad keys env` prints the settings).",
                )
                return
            await self.app(scope, receive, send)
            return
        try:
            signed = sigv4.parse(first, query)
        except sigv4.SignatureProblem as exc:
            await self.unsigned_error(refuse, exc.status, exc.code, exc.message)
            return
        service = self.services.get(signed.credential.service)
        if service is None:
            known = ", ".join(sorted(self.services))
            await self.unsigned_error(
                refuse,
                400,
                "UnknownServiceException",
                f"Naiad does not answer the AWS service {signed.credential.service!r}; it "
                f"answers {known}.",
            )
            return
        if scope["method"] not in _SAFE:
            lost = self.home.lost()
            if lost is not None:  # as HomeGuard answers Naiad's own writes
                await service.send_error(refuse, 503, "ServiceUnavailable", lost)
                return
        try:
            receive, key, who = await self._check(scope, receive, headers, query, signed, service)
        except sigv4.SignatureProblem as exc:
            code = _JSON_CODES.get(exc.code, exc.code) if service.json_errors else exc.code
            await service.send_error(refuse, exc.status, code, exc.message)
            return
        caller = Caller(signed.credential.access_key, signed.credential.region, self.account)
        _name(scope, who, signed.credential.access_key)
        denied = permissions.aws_problem(who, _operation(scope, first, signed.credential.service))
        if denied is not None:
            code, status = (
                ("AccessDeniedException", 400) if service.json_errors else ("AccessDenied", 403)
            )
            await service.send_error(refuse, status, code, denied.message)
            return
        scope = {
            **scope,
            "naiad.aws": caller,
            "naiad.aws.payload": signed.payload_hash,
            "naiad.aws.key": key,  # the verified signing key: S3 checks chunk signatures
        }
        await service.app(scope, receive, send)

    async def _presigned_v2(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, list[str]], query: str
    ) -> None:
        """An S3 URL boto3 presigned with the older signature (its default for S3)."""
        service = self.services["s3"]
        refuse = _closing(send)
        try:
            presigned = sigv2.parse(query)
            who = ADMIN_PRINCIPAL
            if self.keys is not None:
                signer = await run_in_threadpool(self.keys.signer, presigned.access_key)
                if signer is None:
                    raise _unknown_key(presigned.access_key)
                sigv2.verify(
                    signer.secret, presigned, scope["method"], _raw_path(scope), query, headers
                )
                await run_in_threadpool(self.keys.used, presigned.access_key)
                who = signer.principal
        except sigv4.SignatureProblem as exc:
            await service.send_error(refuse, exc.status, exc.code, exc.message)
            return
        _name(scope, who, presigned.access_key)
        denied = permissions.aws_problem(who, _operation(scope, {}, "s3"))
        if denied is not None:
            await service.send_error(refuse, 403, "AccessDenied", denied.message)
            return
        caller = Caller(presigned.access_key, "us-east-1", self.account)
        scope = {**scope, "naiad.aws": caller, "naiad.aws.payload": sigv4.UNSIGNED}
        await service.app(scope, receive, send)

    async def _check(
        self,
        scope: Scope,
        receive: Receive,
        headers: dict[str, list[str]],
        query: str,
        signed: sigv4.SignedRequest,
        service: AwsService,
    ) -> tuple[Receive, bytes | None, Principal]:
        """The request checked: a ``receive`` that replays any body read, the signing key
        (None when the server runs without authentication), and whom the key acts for."""
        sigv4.check_time(signed)
        body: bytes | None = None
        body_hash = None
        if service.reads_body:
            body = await _read(receive, service.max_body)
            body_hash = hashlib.sha256(body).hexdigest()
            stated = signed.payload_hash
            if stated and stated != body_hash:  # UNSIGNED-PAYLOAD too: these bodies are signed
                raise sigv4.SignatureProblem(
                    "XAmzContentSHA256Mismatch",
                    "The body's SHA-256 is not the x-amz-content-sha256 the request states "
                    "(this service signs every body).",
                    400,
                )
        if self.keys is None:  # the server runs without authentication
            return _replay(body, receive), None, ADMIN_PRINCIPAL
        signer = await run_in_threadpool(self.keys.signer, signed.credential.access_key)
        if signer is None:
            raise _unknown_key(signed.credential.access_key)
        method, path = scope["method"], _raw_path(scope)
        sigv4.verify(signer.secret, signed, method, path, query, headers, body_hash)
        await run_in_threadpool(self.keys.used, signed.credential.access_key)
        key = sigv4.signing_key(signer.secret, signed.credential)
        return _replay(body, receive), key, signer.principal


def _name(scope: Scope, who: Principal, access_key: str) -> None:
    """Whom the request acts for: for the audit log, and as the creator of what it makes."""
    note_actor(scope, f"user:{who.name}" if who.is_user else f"key:{access_key}")
    principals.set_current(who)


def _operation(scope: Scope, headers: dict[str, str], service: str) -> str:
    """The AWS operation, as far as the role check needs it: named by an AWS JSON call's
    target; an S3 request's by its method (a read or a write); STS and IAM only read."""
    target = headers.get("x-amz-target")
    if target:
        return target.rpartition(".")[2]
    if service == "s3":
        return "GetObject" if scope["method"] in _SAFE else f"S3 {scope['method']}"
    return "Get"


_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


def _unknown_key(access_key: str) -> sigv4.SignatureProblem:
    return sigv4.SignatureProblem(
        "InvalidAccessKeyId",
        f"The access key {access_key!r} does not work on this Naiad server: it was never "
        "issued, was revoked or has expired, or its user is disabled; create one with "
        "`naiad keys create`, or print the admin's with `naiad keys env`.",
    )


def _closing(send: Send) -> Send:
    """``send`` with ``Connection: close`` on the answer: a client that sent
    ``Expect: 100-continue`` never sends the body a refusal did not read, and the server
    would take its next request for that body."""

    async def closing(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [*message.get("headers", []), (b"connection", b"close")]
            message = {**message, "headers": headers}
        await send(message)

    return closing


def _raw_path(scope: Scope) -> str:
    raw = scope.get("raw_path")
    return raw.decode("latin-1").partition("?")[0] if raw else scope["path"]


class _TooLarge(sigv4.SignatureProblem):
    def __init__(self, limit: int) -> None:
        super().__init__(
            "RequestEntityTooLarge",
            f"The request body is over {limit} bytes, the most this API takes.",
            413,
        )


async def _read(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge(limit)
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replay(body: bytes | None, receive: Receive) -> Receive:
    """A ``receive`` that gives the body already read, then waits as the original would."""
    if body is None:
        return receive
    pending: list[Any] = [body]

    async def replayed() -> Message:
        if pending:
            return {"type": "http.request", "body": pending.pop(), "more_body": False}
        return await receive()

    return replayed
