"""Which S3 operation a request is, read off botocore's published model of S3: the method,
the path's shape (``/``, ``/{Bucket}``, ``/{Bucket}/{Key+}``), the literal query of the
operation's URI (``?uploads``, ``?list-type=2``) and its required query and header members
(``uploadId``, ``x-amz-copy-source``). The most specific match wins, so an operation Naiad
does not serve is still named in the answer."""

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote

from naiad.server.compat.awsjson import service_model
from naiad.server.compat.s3.errors import S3Error


@dataclass(frozen=True)
class Rule:
    name: str
    method: str
    shape: str  # "service", "bucket" or "object"
    literal: tuple[tuple[str, str | None], ...]  # query the URI itself carries
    query: frozenset[str]  # required query members
    headers: frozenset[str]  # required header members
    deprecated: bool

    def matches(self, method: str, shape: str, query: dict[str, str], headers: set[str]) -> bool:
        if method != self.method or shape != self.shape:
            return False
        for name, value in self.literal:
            if name not in query or (value is not None and query[name] != value):
                return False
        return self.query <= query.keys() and self.headers <= headers

    @property
    def weight(self) -> int:
        return len(self.literal) + len(self.query) + len(self.headers)


def _rule(name: str, operation: object) -> Rule | None:
    http = operation.http  # type: ignore[attr-defined]
    path, _, literal_query = http["requestUri"].partition("?")
    shape = {"/": "service", "/{Bucket}": "bucket", "/{Bucket}/{Key+}": "object"}.get(path)
    if shape is None:
        return None
    literal: list[tuple[str, str | None]] = []
    for part in filter(None, literal_query.split("&")):
        key, eq, value = part.partition("=")
        if key != "x-id":  # botocore names the operation there but never sends it
            literal.append((key, value if eq else None))
    query: set[str] = set()
    headers: set[str] = set()
    shape_ = operation.input_shape  # type: ignore[attr-defined]
    for member in shape_.required_members if shape_ is not None else ():
        serialization = shape_.members[member].serialization
        if serialization.get("location") == "querystring":
            query.add(serialization["name"])
        elif serialization.get("location") == "header":
            headers.add(serialization["name"].lower())
    return Rule(
        name,
        http["method"],
        shape,
        tuple(literal),
        frozenset(query),
        frozenset(headers),
        bool(getattr(operation, "deprecated", False)),
    )


@functools.cache
def rules() -> tuple[Rule, ...]:
    model = service_model("s3")
    found = (_rule(name, model.operation_model(name)) for name in model.operation_names)
    return tuple(rule for rule in found if rule is not None)


def operation(
    method: str, shape: str, query: dict[str, str], headers: Iterable[str], served: Iterable[str]
) -> str | None:
    """The name of the S3 operation a request is; None when no operation has its shape.

    Among equally specific matches an operation in ``served`` wins, then one that is not
    deprecated (``ListBuckets`` over ``ListDirectoryBuckets``).
    """
    names = set(headers)
    candidates = [r for r in rules() if r.matches(method, shape, query, names)]
    if not candidates:
        return None
    served_ = set(served)
    best = max(candidates, key=lambda r: (r.weight, r.name in served_, not r.deprecated))
    return best.name


@dataclass(frozen=True)
class Target:
    """Where a request points: the bucket and key of a path-style URL, and its query."""

    bucket: str
    key: str
    query: dict[str, str]

    @property
    def shape(self) -> str:
        return "object" if self.key else "bucket" if self.bucket else "service"

    @property
    def resource(self) -> str:
        return f"/{self.bucket}/{self.key}" if self.key else f"/{self.bucket}"


def _decode(raw: str, what: str) -> str:
    try:
        return unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise S3Error(
            "InvalidURI", f"The {what} in the URL is not percent-encoded UTF-8.", 400
        ) from None


def target(raw_path: bytes, query_string: bytes) -> Target:
    """The bucket, key and query of a path-style request (``/bucket/key/with/slashes``),
    decoded from the path exactly as sent: ``%2F`` and ``+`` stay part of the key."""
    try:
        path = raw_path.decode("ascii")
        query_text = query_string.decode("ascii")
    except UnicodeDecodeError:
        raise S3Error("InvalidURI", "The URL holds bytes that are not ASCII.", 400) from None
    bucket, _, key = path.removeprefix("/").partition("/")
    try:
        pairs = parse_qsl(query_text, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise S3Error("InvalidURI", "The query is not percent-encoded UTF-8.", 400) from None
    return Target(_decode(bucket, "bucket name"), _decode(key, "key"), dict(pairs))
