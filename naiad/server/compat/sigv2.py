"""S3's older signature (HMAC-SHA1), for presigned URLs only: boto3 presigns S3 URLs with
it unless told otherwise (``Config(signature_version="s3v4")``), so a URL from
``generate_presigned_url`` works as it would on AWS. Headers signed with it are refused:
every botocore client signs requests with SigV4."""

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from urllib.parse import unquote

from naiad.server.compat.sigv4 import SignatureProblem

# The query parameters that are part of what S3 signs (botocore's HmacV1Auth list).
_SUBRESOURCES = frozenset(
    [
        "accelerate",
        "acl",
        "cors",
        "defaultObjectAcl",
        "location",
        "logging",
        "partNumber",
        "policy",
        "requestPayment",
        "torrent",
        "versioning",
        "versionId",
        "versions",
        "website",
        "uploads",
        "uploadId",
        "response-content-type",
        "response-content-language",
        "response-expires",
        "response-cache-control",
        "response-content-disposition",
        "response-content-encoding",
        "delete",
        "lifecycle",
        "tagging",
        "restore",
        "storageClass",
        "notification",
        "replication",
        "analytics",
        "metrics",
        "inventory",
        "select",
        "select-type",
        "object-lock",
    ]
)


@dataclass(frozen=True)
class Presigned:
    access_key: str
    signature: str
    expires: int


def is_presigned(query: str) -> bool:
    return "AWSAccessKeyId=" in query and "Signature=" in query and "Expires=" in query


def parse(query: str) -> Presigned:
    params = {k: unquote(v) for k, _, v in (p.partition("=") for p in query.split("&") if p)}
    try:
        expires = int(params["Expires"])
    except (KeyError, ValueError):
        raise SignatureProblem(
            "AuthorizationQueryParametersError", "Expires is not a number.", 400
        ) from None
    return Presigned(params.get("AWSAccessKeyId", ""), params.get("Signature", ""), expires)


def _resource(raw_path: str, query: str) -> str:
    pairs = [p.split("=", 1) for p in query.split("&") if p]
    kept = sorted(
        ([unquote(k), *(unquote(v) for v in rest)] for k, *rest in pairs if k in _SUBRESOURCES),
        key=lambda pair: pair[0],
    )
    return raw_path + ("?" + "&".join("=".join(p) for p in kept) if kept else "")


def verify(
    secret: str,
    presigned: Presigned,
    method: str,
    raw_path: str,
    query: str,
    headers: dict[str, list[str]],
    now: float | None = None,
) -> None:
    if (now or time.time()) > presigned.expires:
        raise SignatureProblem(
            "AccessDenied", "Request has expired: the presigned URL has expired."
        )
    amz = sorted(
        (name, ",".join(values)) for name, values in headers.items() if name.startswith("x-amz-")
    )
    text = "\n".join(
        [
            method.upper(),
            headers.get("content-md5", [""])[0],
            headers.get("content-type", [""])[0],
            str(presigned.expires),
            *(f"{name}:{value}" for name, value in amz),
            _resource(raw_path, query),
        ]
    )
    digest = hmac.new(secret.encode(), text.encode(), hashlib.sha1).digest()
    if not hmac.compare_digest(base64.b64encode(digest).decode(), presigned.signature):
        raise SignatureProblem(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your key and signing method.",
        )
