"""The AWS protocol pieces against botocore itself: its signer, its service model."""

from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from botocore.auth import S3SigV4QueryAuth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from naiad.server.compat import sigv4
from naiad.server.compat.awsjson import AwsError, parse_input, service_model, write_output
from naiad.server.compat.listing import Fields, page
from naiad.server.compat.sagemaker.operations import registry

SECRET = "s3cr3t/with+symbols"
CREDENTIALS = Credentials("NAKEYID", SECRET)


def headers_of(request: AWSRequest) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in request.headers.items():
        out.setdefault(name.lower(), []).append(value)
    return out


def check(request: AWSRequest, secret: str = SECRET, body_hash: str | None = None) -> None:
    parts = urlsplit(request.url)
    headers = {"host": [parts.netloc], **headers_of(request)}  # the HTTP layer sends it
    signed = sigv4.parse({k: v[0] for k, v in headers.items()}, parts.query)
    sigv4.check_time(signed)
    sigv4.verify(secret, signed, request.method, parts.path, parts.query, headers, body_hash)


def test_every_registered_operation_is_in_botocores_model() -> None:
    names = set(service_model("sagemaker").operation_names)
    assert registry.operations and set(registry.operations) <= names


@pytest.mark.parametrize(
    "path", ["/", "/endpoints/my-model/invocations", "/endpoints/a%20b/invocations"]
)
def test_sagemaker_signatures_botocore_makes_verify(path: str) -> None:
    import hashlib

    body = b'{"MaxResults": 5}'
    request = AWSRequest(
        method="POST",
        url=f"http://127.0.0.1:8765{path}?b=2&a=1",
        data=body,
        headers={"X-Amz-Target": "SageMaker.ListTrainingJobs"},
    )
    SigV4Auth(CREDENTIALS, "sagemaker", "eu-west-1").add_auth(request)
    check(request, body_hash=hashlib.sha256(body).hexdigest())
    with pytest.raises(sigv4.SignatureProblem) as wrong:
        check(request, secret="other", body_hash=hashlib.sha256(body).hexdigest())
    assert wrong.value.code == "SignatureDoesNotMatch"
    with pytest.raises(sigv4.SignatureProblem):  # a changed body no longer matches
        check(request, body_hash=hashlib.sha256(body + b" ").hexdigest())


def test_presigned_s3_urls_verify_and_expire() -> None:
    request = AWSRequest(method="GET", url="http://127.0.0.1:8765/bucket/a%20key/x.bin")
    S3SigV4QueryAuth(CREDENTIALS, "s3", "us-east-1", expires=60).add_auth(request)
    check(request)
    parts = urlsplit(request.url)
    signed = sigv4.parse({}, parts.query)
    later = datetime.now(UTC) + timedelta(seconds=120)
    with pytest.raises(sigv4.SignatureProblem) as expired:
        sigv4.check_time(signed, now=later)
    assert "expired" in expired.value.message


def test_a_request_signed_long_ago_is_refused() -> None:
    request = AWSRequest(method="POST", url="http://127.0.0.1:8765/", data=b"{}")
    SigV4Auth(CREDENTIALS, "sagemaker", "us-east-1").add_auth(request)
    signed = sigv4.parse({k.lower(): v for k, v in request.headers.items()}, "")
    with pytest.raises(sigv4.SignatureProblem) as skewed:
        sigv4.check_time(signed, now=datetime.now(UTC) + timedelta(minutes=20))
    assert "15 minutes" in skewed.value.message


def test_input_is_checked_against_the_operation_shape() -> None:
    operation = service_model("sagemaker").operation_model("ListTrainingJobs")
    params = parse_input(operation, b'{"MaxResults": 5, "CreationTimeAfter": 1700000000}')
    assert params["CreationTimeAfter"] == datetime.fromtimestamp(1700000000, UTC)
    with pytest.raises(AwsError) as bad:
        parse_input(operation, b'{"MaxResults": "five", "Colour": 1}')
    assert bad.value.code == "ValidationException"
    assert "MaxResults" in bad.value.message and "Colour" in bad.value.message
    with pytest.raises(AwsError) as not_json:
        parse_input(operation, b"{")
    assert not_json.value.code == "SerializationException"


def test_output_leaves_out_empty_structures_and_writes_epoch_seconds() -> None:
    import orjson

    operation = service_model("sagemaker").operation_model("DescribeModel")
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    body = orjson.loads(
        write_output(
            operation,
            {
                "ModelName": "m",
                "ModelArn": "arn",
                "CreationTime": moment,
                "VpcConfig": {},
                "PrimaryContainer": {"Image": "i", "Environment": {}},
                "NotInTheShape": 1,
            },
        )
    )
    assert body == {
        "ModelName": "m",
        "ModelArn": "arn",
        "CreationTime": moment.timestamp(),
        "PrimaryContainer": {"Image": "i", "Environment": {}},
    }


def test_pages_join_with_next_token() -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    items = [(f"job-{i}", base + timedelta(minutes=i)) for i in range(5)]
    fields: Fields[tuple[str, datetime]] = Fields(name=lambda i: i[0], created=lambda i: i[1])
    seen, token = [], None
    while True:
        params = {
            "MaxResults": 2,
            "SortOrder": "Ascending",
            **({"NextToken": token} if token else {}),
        }
        kept, token = page(items, params, fields)
        seen += [name for name, _ in kept]
        if token is None:
            break
    assert seen == [f"job-{i}" for i in range(5)]
    newest, _ = page(items, {"CreationTimeAfter": base + timedelta(minutes=2)}, fields)
    assert [n for n, _ in newest] == ["job-4", "job-3"]
    with pytest.raises(AwsError):
        page(items, {"NextToken": "garbage"}, fields)


def test_presigned_urls_of_the_older_s3_signature_verify() -> None:
    import time

    from botocore.auth import HmacV1QueryAuth

    from naiad.server.compat import sigv2

    url = "http://127.0.0.1:8765/bucket/a%20key.bin?response-content-type=text%2Fplain"
    request = AWSRequest(method="GET", url=url)
    HmacV1QueryAuth(CREDENTIALS, expires=60).add_auth(request)
    parts = urlsplit(request.url)
    presigned = sigv2.parse(parts.query)
    sigv2.verify(SECRET, presigned, "GET", parts.path, parts.query, {})
    with pytest.raises(sigv4.SignatureProblem):
        sigv2.verify("other", presigned, "GET", parts.path, parts.query, {})
    with pytest.raises(sigv4.SignatureProblem) as expired:
        sigv2.verify(SECRET, presigned, "GET", parts.path, parts.query, {}, now=time.time() + 120)
    assert expired.value.code == "AccessDenied"
