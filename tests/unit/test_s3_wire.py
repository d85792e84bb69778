"""The pure pieces of Naiad's S3 API: ranges, conditions, XML, ETags, bucket names, and
which operation a request is."""

import hashlib
from datetime import UTC, datetime

import pytest

from naiad.server.compat.s3.errors import S3Error
from naiad.server.compat.s3.layout import name_problem
from naiad.server.compat.s3.multipart import multipart_etag
from naiad.server.compat.s3.ranges import Unsatisfiable, byte_range, copy_range, precondition
from naiad.server.compat.s3.routing import operation, target
from naiad.server.compat.s3.xml import MalformedXML, children, document, parse, text, timestamp


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 10, None),
        ("bytes=0-0", 10, (0, 0)),
        ("bytes=2-4", 10, (2, 4)),
        ("bytes=7-", 10, (7, 9)),
        ("bytes=-3", 10, (7, 9)),
        ("bytes=-30", 10, (0, 9)),
        ("bytes=8-100", 10, (8, 9)),
        ("bytes=4-2", 10, None),  # not a range: the whole object, as HTTP says
        ("bytes=0-1,4-5", 10, None),  # several: S3 sends the whole object
        ("items=0-1", 10, None),
        ("bytes=-", 10, None),
    ],
)
def test_byte_range(header: str | None, size: int, expected: tuple[int, int] | None) -> None:
    assert byte_range(header, size) == expected


@pytest.mark.parametrize(("header", "size"), [("bytes=10-", 10), ("bytes=-0", 10), ("bytes=0-", 0)])
def test_unsatisfiable_range(header: str, size: int) -> None:
    with pytest.raises(Unsatisfiable):
        byte_range(header, size)


def test_copy_range() -> None:
    assert copy_range("bytes=0-4", 10) == (0, 4)
    with pytest.raises(S3Error) as exc:
        copy_range("bytes=5-", 10)
    assert exc.value.code == "InvalidArgument"
    with pytest.raises(S3Error) as exc:
        copy_range("bytes=5-10", 10)
    assert (exc.value.code, exc.value.status) == ("InvalidRange", 416)


def test_preconditions() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, 600_000, tzinfo=UTC)
    etag = '"abc"'
    assert precondition({}, etag, moment) is None
    assert precondition({"if-match": '"abc"'}, etag, moment) is None
    assert precondition({"if-match": '"x", W/"abc"'}, etag, moment) is None
    assert precondition({"if-match": "*"}, etag, moment) is None
    assert precondition({"if-match": '"x"'}, etag, moment) == 412
    assert precondition({"if-none-match": '"abc"'}, etag, moment) == 304
    same_second = "Fri, 02 Jan 2026 03:04:05 GMT"
    earlier = "Fri, 02 Jan 2026 03:04:04 GMT"
    assert precondition({"if-modified-since": same_second}, etag, moment) == 304
    assert precondition({"if-modified-since": earlier}, etag, moment) is None
    assert precondition({"if-unmodified-since": earlier}, etag, moment) == 412
    assert precondition({"if-modified-since": "yesterday"}, etag, moment) is None
    # If-None-Match decides over If-Modified-Since; If-Match over If-Unmodified-Since.
    headers = {"if-none-match": '"x"', "if-modified-since": same_second}
    assert precondition(headers, etag, moment) is None
    headers = {"if-match": '"abc"', "if-unmodified-since": earlier}
    assert precondition(headers, etag, moment) is None
    copy = {"x-amz-copy-source-if-none-match": '"abc"'}
    assert precondition(copy, etag, moment, "x-amz-copy-source-") == 412


def test_xml_documents_escape_and_nest() -> None:
    body = document(
        "ListBucketResult",
        [("Name", "b"), ("Key", "a<&>b"), ("IsTruncated", False), ("Items", [("Size", 3)])],
    )
    root = parse(body, "ListBucketResult")
    assert text(root, "Key") == "a<&>b"
    assert text(root, "IsTruncated") == "false"
    assert [text(c, "Size") for c in children(root, "Items")] == ["3"]
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    assert b'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"' in body
    assert timestamp(datetime(2026, 1, 2, 3, 4, 5, 678_900, tzinfo=UTC)) == (
        "2026-01-02T03:04:05.678Z"
    )


def test_xml_requests_are_read_in_any_namespace_and_refused_when_broken() -> None:
    plain = parse(b"<Delete><Object><Key>k</Key></Object></Delete>", "Delete")
    spaced = parse(
        b'<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Object><Key>k</Key>'
        b"</Object></Delete>",
        "Delete",
    )
    for root in (plain, spaced):
        assert [text(o, "Key") for o in children(root, "Object")] == ["k"]
    with pytest.raises(MalformedXML):
        parse(b"<Delete><Object>", "Delete")
    with pytest.raises(MalformedXML):
        parse(b"<Other/>", "Delete")


def test_multipart_etag_is_the_md5_of_the_parts_md5s() -> None:
    parts = [b"a" * 10, b"b" * 3]
    md5s = [hashlib.md5(p).hexdigest() for p in parts]
    expected = hashlib.md5(b"".join(bytes.fromhex(m) for m in md5s)).hexdigest()
    assert multipart_etag([f'"{m}"' for m in md5s]) == f'"{expected}-2"'


@pytest.mark.parametrize("name", ["abc", "my-bucket.v2", "a" * 63, "0day", "naiad"])
def test_good_bucket_names(name: str) -> None:
    assert name_problem(name) is None


@pytest.mark.parametrize(
    ("name", "clause"),
    [
        ("ab", "3 to 63"),
        ("a" * 64, "3 to 63"),
        ("Upper", "lowercase"),
        ("under_score", "lowercase"),
        ("-dash", "begin and end"),
        ("dash-", "begin and end"),
        ("a..b", "two periods"),
        ("10.0.0.1", "IP address"),
        ("xn--bucket", "AWS reserves"),
        ("bucket-s3alias", "AWS reserves"),
    ],
)
def test_bad_bucket_names(name: str, clause: str) -> None:
    problem = name_problem(name)
    assert problem is not None and clause in problem


def test_targets_are_decoded_from_the_raw_path() -> None:
    found = target(b"/bucket/a%20b/c%2Bd+e/%E5%90%8D", b"list-type=2&prefix=a%2Fb&uploads")
    assert (found.bucket, found.key) == ("bucket", "a b/c+d+e/名")
    assert found.query == {"list-type": "2", "prefix": "a/b", "uploads": ""}
    assert target(b"/", b"").shape == "service"
    assert target(b"/b", b"").shape == target(b"/b/", b"").shape == "bucket"
    with pytest.raises(S3Error) as exc:
        target(b"/b/%FF", b"")
    assert exc.value.code == "InvalidURI"


SERVED = {"ListBuckets", "ListObjectsV2", "ListObjects", "GetObject", "PutObject", "CopyObject"}


@pytest.mark.parametrize(
    ("method", "shape", "query", "headers", "name"),
    [
        ("GET", "service", {}, set(), "ListBuckets"),
        ("GET", "bucket", {"list-type": "2"}, set(), "ListObjectsV2"),
        ("GET", "bucket", {}, set(), "ListObjects"),
        ("GET", "bucket", {"versioning": ""}, set(), "GetBucketVersioning"),
        ("GET", "bucket", {"uploads": ""}, set(), "ListMultipartUploads"),
        ("POST", "bucket", {"delete": ""}, set(), "DeleteObjects"),
        ("PUT", "object", {}, set(), "PutObject"),
        ("PUT", "object", {}, {"x-amz-copy-source"}, "CopyObject"),
        ("PUT", "object", {"partNumber": "1", "uploadId": "u"}, set(), "UploadPart"),
        (
            "PUT",
            "object",
            {"partNumber": "1", "uploadId": "u"},
            {"x-amz-copy-source"},
            "UploadPartCopy",
        ),
        ("GET", "object", {"uploadId": "u"}, set(), "ListParts"),
        ("GET", "object", {"response-content-type": "x"}, set(), "GetObject"),
        ("POST", "object", {"uploads": ""}, set(), "CreateMultipartUpload"),
        ("POST", "object", {"uploadId": "u"}, set(), "CompleteMultipartUpload"),
        ("DELETE", "object", {"uploadId": "u"}, set(), "AbortMultipartUpload"),
        ("GET", "object", {"tagging": ""}, set(), "GetObjectTagging"),
        ("PATCH", "object", {}, set(), None),
    ],
)
def test_operations_are_named_from_botocores_model(
    method: str, shape: str, query: dict[str, str], headers: set[str], name: str | None
) -> None:
    assert operation(method, shape, query, headers, SERVED) == name


def test_over_an_s3_artifact_store_every_request_is_sent_to_that_service() -> None:
    from types import SimpleNamespace

    import anyio

    from naiad.server.compat.s3 import s3_service

    store = SimpleNamespace(uri="s3://team-artifacts/naiad")
    state = SimpleNamespace(
        artifacts=store, settings=SimpleNamespace(s3_endpoint_url="http://minio:9000")
    )
    service = s3_service(state)  # type: ignore[arg-type]
    sent: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": "GET", "path": "/b/k", "headers": []}
    anyio.run(service.app, scope, receive, send)
    assert sent[0]["status"] == 501
    body = sent[1]["body"]
    assert isinstance(body, bytes)
    assert b"s3://team-artifacts/naiad" in body and b"http://minio:9000" in body
    assert b"use that S3 service directly" in body
