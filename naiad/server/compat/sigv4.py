"""AWS Signature Version 4, verified: what botocore signs, recomputed with the secret of the
access key it names, so boto3 and the SageMaker SDK authenticate to Naiad unchanged.

Both ways botocore signs are read: the ``Authorization`` header, and the query string of
a presigned URL (``X-Amz-Signature``...). The canonical request follows AWS's published
algorithm, including its one service difference: S3 signs the path as sent, every other
service signs it URI-encoded once more.
"""

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED = "UNSIGNED-PAYLOAD"
MAX_SKEW = timedelta(minutes=15)  # AWS refuses a request signed further from its clock
MAX_PRESIGNED = 7 * 24 * 3600
_AUTH = re.compile(
    r"AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+)\s*,\s*"
    r"SignedHeaders=(?P<headers>[^,\s]+)\s*,\s*Signature=(?P<signature>[0-9a-f]{64})\s*$"
)


class SignatureProblem(Exception):
    """The request is not correctly signed; ``code`` is AWS's name for what is wrong."""

    def __init__(self, code: str, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass(frozen=True)
class Credential:
    """What the client claims to be signed with: ``AKID/date/region/service/aws4_request``."""

    access_key: str
    date: str
    region: str
    service: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


@dataclass(frozen=True)
class SignedRequest:
    """A request's signature parts, parsed but not yet checked."""

    credential: Credential
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: str
    payload_hash: str  # what the signature covers: a hex digest, or UNSIGNED-PAYLOAD
    presigned: bool
    expires: int | None = None


def is_signed(headers: dict[str, str], query: str) -> bool:
    """Whether the request carries a SigV4 signature (any, even a broken one)."""
    return headers.get("authorization", "").startswith(ALGORITHM) or (
        "X-Amz-Algorithm=" in query and "X-Amz-Signature=" in query
    )


def _credential(value: str) -> Credential:
    parts = value.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not all(parts):
        raise SignatureProblem(
            "IncompleteSignature",
            f"The credential {value!r} is not ACCESS_KEY/DATE/REGION/SERVICE/aws4_request.",
            400,
        )
    return Credential(*parts[:4])


def _query_pairs(query: str) -> list[tuple[str, str]]:
    return [(k, v) for k, _, v in (p.partition("=") for p in query.split("&") if p)]


def parse(headers: dict[str, str], query: str) -> SignedRequest:
    """The signature parts of a request; SignatureProblem when they are malformed."""
    header = headers.get("authorization", "")
    if header:
        match = _AUTH.match(header)
        if match is None:
            raise SignatureProblem(
                "IncompleteSignature",
                "The Authorization header is not 'AWS4-HMAC-SHA256 Credential=..., "
                "SignedHeaders=..., Signature=...'.",
                400,
            )
        amz_date = headers.get("x-amz-date", "")
        return SignedRequest(
            credential=_credential(match["credential"]),
            signed_headers=tuple(match["headers"].split(";")),
            signature=match["signature"],
            amz_date=amz_date,
            payload_hash=headers.get("x-amz-content-sha256", ""),
            presigned=False,
        )
    params = {k: unquote(v) for k, v in _query_pairs(query)}
    if params.get("X-Amz-Algorithm") != ALGORITHM:
        raise SignatureProblem(
            "IncompleteSignature", f"Only {ALGORITHM} presigned URLs are accepted.", 400
        )
    try:
        expires = int(params.get("X-Amz-Expires", "900"))
    except ValueError:
        raise SignatureProblem(
            "AuthorizationQueryParametersError", "X-Amz-Expires is not a number.", 400
        ) from None
    if not 1 <= expires <= MAX_PRESIGNED:
        raise SignatureProblem(
            "AuthorizationQueryParametersError",
            f"X-Amz-Expires must be between 1 and {MAX_PRESIGNED} seconds.",
            400,
        )
    return SignedRequest(
        credential=_credential(params.get("X-Amz-Credential", "")),
        signed_headers=tuple(params.get("X-Amz-SignedHeaders", "host").split(";")),
        signature=params.get("X-Amz-Signature", ""),
        amz_date=params.get("X-Amz-Date", ""),
        payload_hash=UNSIGNED,
        presigned=True,
        expires=expires,
    )


def _signed_at(amz_date: str) -> datetime:
    try:
        return datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise SignatureProblem(
            "IncompleteSignature",
            f"X-Amz-Date {amz_date!r} is not an ISO 8601 basic timestamp (20260102T030405Z).",
            400,
        ) from None


def check_time(signed: SignedRequest, now: datetime | None = None) -> None:
    """Refuse a request signed too far from now, or a presigned URL past its expiry."""
    now = now or datetime.now(UTC)
    at = _signed_at(signed.amz_date)
    if signed.credential.date != signed.amz_date[:8]:
        raise SignatureProblem(
            "SignatureDoesNotMatch", "The credential's date is not the date of X-Amz-Date."
        )
    if signed.presigned:
        assert signed.expires is not None
        if now > at + timedelta(seconds=signed.expires):
            raise SignatureProblem("AccessDenied", "The presigned URL has expired.")
        if at - now > MAX_SKEW:
            raise SignatureProblem("RequestTimeTooSkewed", "The presigned URL is dated ahead.")
    elif abs(now - at) > MAX_SKEW:
        raise SignatureProblem(
            "RequestTimeTooSkewed"
            if signed.credential.service == "s3"
            else "InvalidSignatureException",
            f"Signature expired: the request was signed at {at:%Y-%m-%dT%H:%M:%SZ}, more than "
            f"15 minutes from the server's clock ({now:%Y-%m-%dT%H:%M:%SZ}); check the clocks.",
        )


def _canonical_path(raw_path: str, service: str) -> str:
    if service == "s3":
        return raw_path or "/"
    segments: list[str] = []
    for segment in raw_path.split("/"):  # remove dot segments, as botocore does first
        if segment == "..":
            if segments:
                segments.pop()
        elif segment != ".":
            segments.append(segment)
    path = "/".join(segments)
    if not path.startswith("/"):
        path = "/" + path
    if raw_path.endswith("/") and not path.endswith("/"):
        path += "/"
    return quote(path, safe="/~")


def _canonical_query(query: str, presigned: bool) -> str:
    pairs = [(k, v) for k, v in _query_pairs(query) if not (presigned and k == "X-Amz-Signature")]
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def canonical_request(
    method: str,
    raw_path: str,
    query: str,
    headers: dict[str, list[str]],
    signed: SignedRequest,
    payload_hash: str,
) -> str:
    lines = []
    for name in signed.signed_headers:
        values = headers.get(name)
        if values is None:
            raise SignatureProblem(
                "SignatureDoesNotMatch", f"The signed header {name!r} is not in the request."
            )
        lines.append(f"{name}:{','.join(' '.join(v.split()) for v in values)}\n")
    return "\n".join(
        [
            method.upper(),
            _canonical_path(raw_path, signed.credential.service),
            _canonical_query(query, signed.presigned),
            "".join(lines),
            ";".join(signed.signed_headers),
            payload_hash,
        ]
    )


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signing_key(secret: str, credential: Credential) -> bytes:
    """The key a credential scope signs with: HMACs of the date, region, service in turn."""
    key = f"AWS4{secret}".encode()
    for part in (credential.date, credential.region, credential.service, "aws4_request"):
        key = _hmac(key, part)
    return key


def signature(secret: str, signed: SignedRequest, canonical: str) -> str:
    cred = signed.credential
    to_sign = "\n".join(
        [ALGORITHM, signed.amz_date, cred.scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    return hmac.new(signing_key(secret, cred), to_sign.encode(), hashlib.sha256).hexdigest()


def verify(
    secret: str,
    signed: SignedRequest,
    method: str,
    raw_path: str,
    query: str,
    headers: dict[str, list[str]],
    body_hash: str | None,
) -> None:
    """Recompute the signature; SignatureProblem when it differs.

    ``body_hash`` is the body's SHA-256 when the caller read it, for a request that does
    not state its payload hash in ``x-amz-content-sha256`` (every service but S3).
    """
    payload = signed.payload_hash or body_hash
    if payload is None:
        raise SignatureProblem(
            "SignatureDoesNotMatch", "The request states no payload hash (x-amz-content-sha256)."
        )
    canonical = canonical_request(method, raw_path, query, headers, signed, payload)
    if not hmac.compare_digest(signature(secret, signed, canonical), signed.signature):
        raise SignatureProblem(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. "
            "Check your AWS secret access key and signing method.",
        )
