"""Naiad's S3 API driven by boto3's own ``s3`` client against a live server, on SQLite and
PostgreSQL: buckets, objects, listings, copies, multipart transfers, the checks on bodies
and signatures, and the mapping of buckets onto the artifact store."""

import base64
import hashlib
import hmac
import io
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from naiad.core.home import HomeLayout
from naiad.server.compat import sigv4
from naiad.store.artifacts.local import LocalArtifactStore
from naiad.testing.aws import AwsServer, aws  # noqa: F401

MiB = 1024 * 1024


def code(exc: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    error = exc.value.response
    return error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture(scope="module")
def s3(aws: AwsServer) -> Any:  # noqa: F811
    return aws.client("s3")


@pytest.fixture
def bucket(s3: Any) -> Iterator[str]:
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    yield name
    keys = [
        o["Key"]
        for p in s3.get_paginator("list_objects_v2").paginate(Bucket=name)
        for o in p.get("Contents", [])
    ]
    for start in range(0, len(keys), 1000):
        chunk = [{"Key": k} for k in keys[start : start + 1000]]
        s3.delete_objects(Bucket=name, Delete={"Objects": chunk})
    s3.delete_bucket(Bucket=name)


def artifacts(aws: AwsServer) -> Path:  # noqa: F811
    return HomeLayout(aws.server.home).artifacts


# -- buckets ---------------------------------------------------------------------------


def test_buckets_are_created_listed_headed_and_deleted(s3: Any) -> None:
    name = f"made-{uuid.uuid4().hex[:8]}"
    assert s3.create_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 200
    s3.create_bucket(Bucket=name)  # again, by its owner: 200, as us-east-1 answers
    listed = s3.list_buckets()
    names = [b["Name"] for b in listed["Buckets"]]
    assert name in names and "naiad" in names  # empty, it still exists
    assert listed["Owner"]["ID"]
    assert all(b["CreationDate"] for b in listed["Buckets"])
    assert s3.head_bucket(Bucket=name)["ResponseMetadata"]["HTTPStatusCode"] == 200

    s3.put_object(Bucket=name, Key="x", Body=b"1")
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket=name)
    assert code(exc) == ("BucketNotEmpty", 409)
    s3.delete_object(Bucket=name, Key="x")
    s3.delete_bucket(Bucket=name)
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket=name)
    assert code(exc)[1] == 404
    with pytest.raises(ClientError) as exc:
        s3.list_objects_v2(Bucket=name)
    assert code(exc) == ("NoSuchBucket", 404)


@pytest.mark.parametrize("name", ["ab", "Upper", "under_score", "-dash", "192.168.0.1", "a..b"])
def test_a_bad_bucket_name_is_refused_with_s3s_rule(s3: Any, name: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket=name)
    assert code(exc) == ("InvalidBucketName", 400)
    assert "bucket name" in exc.value.response["Error"]["Message"]


# -- objects -----------------------------------------------------------------------------


def test_put_get_head_delete_keep_metadata_and_type(s3: Any, bucket: str) -> None:
    put = s3.put_object(
        Bucket=bucket,
        Key="docs/readme.txt",
        Body=b"hello naiad",
        ContentType="text/plain; charset=utf-8",
        Metadata={"owner": "ada", "stage": "raw"},
        CacheControl="max-age=60",
    )
    assert put["ETag"] == f'"{hashlib.md5(b"hello naiad").hexdigest()}"'
    got = s3.get_object(Bucket=bucket, Key="docs/readme.txt")
    assert got["Body"].read() == b"hello naiad"
    assert got["ContentType"] == "text/plain; charset=utf-8"
    assert got["Metadata"] == {"owner": "ada", "stage": "raw"}
    assert got["CacheControl"] == "max-age=60"
    assert got["ETag"] == put["ETag"]
    head = s3.head_object(Bucket=bucket, Key="docs/readme.txt")
    assert head["ContentLength"] == 11 and head["ETag"] == put["ETag"]
    assert head["LastModified"] is not None

    assert (
        s3.delete_object(Bucket=bucket, Key="docs/readme.txt")["ResponseMetadata"]["HTTPStatusCode"]
        == 204
    )
    s3.delete_object(Bucket=bucket, Key="docs/readme.txt")  # idempotent
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="docs/readme.txt")
    assert code(exc) == ("NoSuchKey", 404)
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="docs/readme.txt")
    assert code(exc)[1] == 404


def test_etag_is_the_md5_and_a_wrong_content_md5_is_refused(s3: Any, bucket: str) -> None:
    body = b"checked bytes"
    put = s3.put_object(Bucket=bucket, Key="k", Body=body)
    assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="k2", Body=body, ContentMD5=wrong)
    assert code(exc) == ("BadDigest", 400)
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="k2")


def test_a_body_that_is_not_the_signed_one_is_refused_and_not_kept(
    aws: AwsServer,  # noqa: F811
    bucket: str,
) -> None:
    client = aws.client("s3")

    def tamper(request: Any, **_: Any) -> None:
        if request.method == "PUT":
            request.body = b"HELLO"  # same length, other bytes, after signing

    client.meta.events.register("before-send.s3", tamper)
    with pytest.raises(ClientError) as exc:
        client.put_object(Bucket=bucket, Key="tampered", Body=b"hello")
    assert code(exc) == ("XAmzContentSHA256Mismatch", 400)
    assert not (artifacts(aws) / "buckets" / bucket / "tampered").exists()


def test_ranges(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="digits", Body=b"0123456789")

    def read(spec: str) -> tuple[bytes, str, int]:
        got = s3.get_object(Bucket=bucket, Key="digits", Range=spec)
        return got["Body"].read(), got["ContentRange"], got["ResponseMetadata"]["HTTPStatusCode"]

    assert read("bytes=2-4") == (b"234", "bytes 2-4/10", 206)
    assert read("bytes=7-") == (b"789", "bytes 7-9/10", 206)
    assert read("bytes=-3") == (b"789", "bytes 7-9/10", 206)
    assert read("bytes=8-100") == (b"89", "bytes 8-9/10", 206)
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="digits", Range="bytes=10-")
    assert code(exc) == ("InvalidRange", 416)


def test_conditional_reads(s3: Any, bucket: str) -> None:
    etag = s3.put_object(Bucket=bucket, Key="c", Body=b"same")["ETag"]
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="c", IfNoneMatch=etag)
    assert code(exc)[1] == 304
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="c", IfMatch='"0000"')
    assert code(exc) == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket=bucket, Key="c", IfMatch=etag)["Body"].read() == b"same"


@pytest.mark.parametrize(
    "key",
    ["a key with spaces.txt", "naïve/名前/файл.bin", "plus+and%percent", "deep/a/b/c/d.txt", "~t"],
)
def test_keys_are_decoded_exactly(s3: Any, bucket: str, key: str) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode()
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [o["Key"] for o in listed] == [key]


def test_a_key_that_is_no_file_path_is_a_clear_400(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="a/../../escape", Body=b"x")
    assert code(exc) == ("InvalidArgument", 400)
    assert "'..'" in exc.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="bad\u202ename", Body=b"x")
    assert code(exc) == ("InvalidArgument", 400)
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="x" * 1000, Body=b"x")
    assert code(exc) == ("KeyTooLong", 400)
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="file/", Body=b"bytes")
    assert code(exc) == ("InvalidArgument", 400)
    s3.put_object(Bucket=bucket, Key="folder/", Body=b"")  # a console's "new folder": a no-op


# -- listings ----------------------------------------------------------------------------


KEYS = sorted(
    [
        "a.txt",
        "a/1",
        "a/2",
        "a/b/3",
        "a0",
        "b-x/1",
        "b-y/2",
        "c",
        *(f"many/{i:03d}" for i in range(23)),
    ],
    key=lambda k: k.encode(),
)


@pytest.fixture
def listed(s3: Any, bucket: str) -> str:
    for key in KEYS:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    return bucket


def test_list_objects_v2_pages_through_every_key_in_order(s3: Any, listed: str) -> None:
    pages = list(
        s3.get_paginator("list_objects_v2").paginate(
            Bucket=listed, PaginationConfig={"PageSize": 4}
        )
    )
    assert len(pages) == -(-len(KEYS) // 4)
    assert all(p["KeyCount"] <= 4 for p in pages)
    assert [o["Key"] for p in pages for o in p["Contents"]] == KEYS
    assert pages[0]["IsTruncated"] and not pages[-1]["IsTruncated"]
    sizes = {o["Key"]: o["Size"] for p in pages for o in p["Contents"]}
    assert sizes["a/b/3"] == len("a/b/3")


def test_list_objects_v2_prefix_delimiter_start_after(s3: Any, listed: str) -> None:
    top = s3.list_objects_v2(Bucket=listed, Delimiter="/")
    assert [o["Key"] for o in top["Contents"]] == ["a.txt", "a0", "c"]
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["a/", "b-x/", "b-y/", "many/"]
    assert top["KeyCount"] == 7
    under_a = s3.list_objects_v2(Bucket=listed, Prefix="a/", Delimiter="/")
    assert [o["Key"] for o in under_a["Contents"]] == ["a/1", "a/2"]
    assert [p["Prefix"] for p in under_a["CommonPrefixes"]] == ["a/b/"]
    dashed = s3.list_objects_v2(Bucket=listed, Prefix="b", Delimiter="-")
    assert [p["Prefix"] for p in dashed["CommonPrefixes"]] == ["b-"]
    after = s3.list_objects_v2(Bucket=listed, StartAfter="many/020")
    assert [o["Key"] for o in after["Contents"]] == ["many/021", "many/022"]
    # Common prefixes page like keys.
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=listed, Delimiter="/", PaginationConfig={"PageSize": 2}
    )
    seen = [(p.get("CommonPrefixes", []), p.get("Contents", [])) for p in pages]
    prefixes = [c["Prefix"] for cps, _ in seen for c in cps]
    assert prefixes == ["a/", "b-x/", "b-y/", "many/"]
    assert [o["Key"] for _, objs in seen for o in objs] == ["a.txt", "a0", "c"]


def test_list_objects_v1_pages_with_markers(s3: Any, listed: str) -> None:
    pages = s3.get_paginator("list_objects").paginate(
        Bucket=listed, PaginationConfig={"PageSize": 5}
    )
    assert [o["Key"] for p in pages for o in p["Contents"]] == KEYS
    delimited = s3.get_paginator("list_objects").paginate(
        Bucket=listed, Delimiter="/", PaginationConfig={"PageSize": 2}
    )
    prefixes = [c["Prefix"] for p in delimited for c in p.get("CommonPrefixes", [])]
    assert prefixes == ["a/", "b-x/", "b-y/", "many/"]


# -- copies and batch deletes ---------------------------------------------------------------


def test_copy_object_keeps_or_replaces_metadata(s3: Any, bucket: str) -> None:
    s3.put_object(
        Bucket=bucket, Key="src", Body=b"payload", ContentType="text/csv", Metadata={"a": "1"}
    )
    copied = s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    assert copied["CopyObjectResult"]["ETag"] == s3.head_object(Bucket=bucket, Key="src")["ETag"]
    got = s3.get_object(Bucket=bucket, Key="dst")
    assert (got["Body"].read(), got["ContentType"], got["Metadata"]) == (
        b"payload",
        "text/csv",
        {"a": "1"},
    )
    s3.copy_object(
        Bucket=bucket,
        Key="dst",
        CopySource=f"{bucket}/src",
        MetadataDirective="REPLACE",
        ContentType="application/json",
        Metadata={"b": "2"},
    )
    head = s3.head_object(Bucket=bucket, Key="dst")
    assert (head["ContentType"], head["Metadata"]) == ("application/json", {"b": "2"})
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"})
    assert code(exc) == ("InvalidRequest", 400)
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="x", CopySource={"Bucket": bucket, "Key": "missing"})
    assert code(exc) == ("NoSuchKey", 404)


def test_delete_objects_in_a_batch(s3: Any, bucket: str) -> None:
    for key in ("d/1", "d/2", "d/3"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    answer = s3.delete_objects(
        Bucket=bucket,
        Delete={"Objects": [{"Key": "d/1"}, {"Key": "d/2"}, {"Key": "never"}, {"Key": "a/../b"}]},
    )
    assert sorted(d["Key"] for d in answer["Deleted"]) == ["d/1", "d/2", "never"]
    assert [(e["Key"], e["Code"]) for e in answer["Errors"]] == [("a/../b", "InvalidArgument")]
    quiet = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "d/3"}], "Quiet": True})
    assert "Deleted" not in quiet
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


# -- multipart -----------------------------------------------------------------------------


def test_upload_file_is_multipart_and_downloads_byte_identical(
    s3: Any, bucket: str, tmp_path: Path
) -> None:
    source = tmp_path / "big.bin"
    data = os.urandom(9 * MiB + 12345)  # above boto3's 8 MiB threshold: two parts
    source.write_bytes(data)
    s3.upload_file(str(source), bucket, "big/file.bin")
    head = s3.head_object(Bucket=bucket, Key="big/file.bin")
    assert head["ContentLength"] == len(data)
    assert head["ETag"].endswith('-2"')
    back = tmp_path / "back.bin"
    s3.download_file(bucket, "big/file.bin", str(back))
    assert back.read_bytes() == data
    s3.upload_fileobj(io.BytesIO(data), bucket, "big/fileobj.bin")
    out = io.BytesIO()
    s3.download_fileobj(bucket, "big/fileobj.bin", out)
    assert out.getvalue() == data
    # boto3's managed copy of a large object copies its parts (UploadPartCopy).
    s3.copy({"Bucket": bucket, "Key": "big/file.bin"}, bucket, "big/copy.bin")
    assert s3.get_object(Bucket=bucket, Key="big/copy.bin")["Body"].read() == data


def test_multipart_by_hand(s3: Any, bucket: str) -> None:
    first, last = os.urandom(5 * MiB), b"tail"
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", ContentType="text/x-parts")
    uid = upload["UploadId"]
    e1 = s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=1, Body=first)["ETag"]
    e2 = s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=2, Body=last)["ETag"]
    parts = s3.list_parts(Bucket=bucket, Key="mp", UploadId=uid)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, len(first)), (2, 4)]
    uploads = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [u["UploadId"] for u in uploads] == [uid]

    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="mp",
            UploadId=uid,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"00"'}]},
        )
    assert code(exc) == ("InvalidPart", 400)
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="mp",
            UploadId=uid,
            MultipartUpload={
                "Parts": [{"PartNumber": 2, "ETag": e2}, {"PartNumber": 1, "ETag": e1}]
            },
        )
    assert code(exc) == ("InvalidPartOrder", 400)
    done = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="mp",
        UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": e1}, {"PartNumber": 2, "ETag": e2}]},
    )
    expected = hashlib.md5(bytes.fromhex(e1.strip('"')) + bytes.fromhex(e2.strip('"'))).hexdigest()
    assert done["ETag"] == f'"{expected}-2"'
    got = s3.get_object(Bucket=bucket, Key="mp")
    assert got["Body"].read() == first + last and got["ContentType"] == "text/x-parts"
    with pytest.raises(ClientError) as exc:
        s3.list_parts(Bucket=bucket, Key="mp", UploadId=uid)
    assert code(exc) == ("NoSuchUpload", 404)

    small = s3.create_multipart_upload(Bucket=bucket, Key="small")["UploadId"]
    p1 = s3.upload_part(Bucket=bucket, Key="small", UploadId=small, PartNumber=1, Body=b"1")
    p2 = s3.upload_part(Bucket=bucket, Key="small", UploadId=small, PartNumber=2, Body=b"2")
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="small",
            UploadId=small,
            MultipartUpload={
                "Parts": [
                    {"PartNumber": 1, "ETag": p1["ETag"]},
                    {"PartNumber": 2, "ETag": p2["ETag"]},
                ]
            },
        )
    assert code(exc) == ("EntityTooSmall", 400)
    s3.abort_multipart_upload(Bucket=bucket, Key="small", UploadId=small)
    with pytest.raises(ClientError) as exc:
        s3.abort_multipart_upload(Bucket=bucket, Key="small", UploadId=small)
    assert code(exc) == ("NoSuchUpload", 404)
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)


# -- what boto3 sends over TLS ---------------------------------------------------------------


def test_aws_chunked_bodies_as_boto3_sends_them_over_https(
    aws: AwsServer,  # noqa: F811
    bucket: str,
) -> None:
    """Behind a TLS proxy boto3 frames uploads as aws-chunked with a CRC32 trailer: the
    client believes it speaks https, and the request is sent as it is to the plain port."""
    client = aws.client("s3", endpoint_url=aws.url.replace("http://", "https://"))
    sent: list[dict[str, Any]] = []

    def plain(request: Any, **_: Any) -> None:
        sent.append(dict(request.headers))
        request.url = request.url.replace("https://", "http://", 1)

    client.meta.events.register("before-send.s3", plain)
    client.put_object(Bucket=bucket, Key="chunked", Body=b"hello world")
    assert sent[-1]["Content-Encoding"] == b"aws-chunked"
    assert sent[-1]["X-Amz-Content-SHA256"] == b"STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    assert client.get_object(Bucket=bucket, Key="chunked")["Body"].read() == b"hello world"
    data = os.urandom(9 * MiB)
    client.upload_fileobj(io.BytesIO(data), bucket, "chunked-big")
    assert client.get_object(Bucket=bucket, Key="chunked-big")["Body"].read() == data


# -- authentication -----------------------------------------------------------------------


def test_a_wrong_secret_or_an_unknown_key_is_refused(aws: AwsServer) -> None:  # noqa: F811
    key_id = aws.credentials()["aws_access_key_id"]
    wrong = aws.client("s3", aws_secret_access_key="not-the-secret", aws_access_key_id=key_id)
    with pytest.raises(ClientError) as exc:
        wrong.list_buckets()
    assert code(exc) == ("SignatureDoesNotMatch", 403)
    stranger = aws.client("s3", aws_access_key_id="AKIDNOTISSUED", aws_secret_access_key="x")
    with pytest.raises(ClientError) as exc:
        stranger.list_buckets()
    assert code(exc) == ("InvalidAccessKeyId", 403)


def test_a_presigned_url_reads_an_object(aws: AwsServer, s3: Any, bucket: str) -> None:  # noqa: F811
    s3.put_object(Bucket=bucket, Key="shared.html", Body=b"<script>x</script>")
    # boto3's default presigns S3 URLs with the older signature (SigV2); both are accepted.
    for signer in (s3, aws.client("s3", config=Config(signature_version="s3v4"))):
        params = {"Bucket": bucket, "Key": "shared.html"}
        url = signer.generate_presigned_url("get_object", Params=params)
        answer = httpx.get(url)
        assert answer.status_code == 200 and answer.content == b"<script>x</script>", url
        assert answer.headers["content-security-policy"] == "sandbox"  # never the console
        tampered = httpx.get(url.replace("shared.html", "other.html"))
        assert tampered.status_code == 403
        assert "<Code>SignatureDoesNotMatch</Code>" in tampered.text
    expired = s3.generate_presigned_url("get_object", Params=params, ExpiresIn=-10)
    assert "<Code>AccessDenied</Code>" in httpx.get(expired).text


# -- the artifact store ------------------------------------------------------------------------


def test_objects_are_artifacts_and_artifacts_are_objects(
    aws: AwsServer,  # noqa: F811
    s3: Any,
    bucket: str,
) -> None:
    s3.put_object(Bucket=bucket, Key="train/part-0.csv", Body=b"x,y\n1,2\n")
    on_disk = artifacts(aws) / "buckets" / bucket / "train" / "part-0.csv"
    assert on_disk.read_bytes() == b"x,y\n1,2\n"
    assert sorted(p.name for p in (artifacts(aws) / "buckets" / bucket).rglob("*")) == [
        "part-0.csv",
        "train",
    ]  # no sidecar or marker among a channel's files

    store = LocalArtifactStore(artifacts(aws).as_uri())
    store.put_bytes(f"buckets/{bucket}/train/part-1.csv", b"x,y\n3,4\n")
    assert s3.get_object(Bucket=bucket, Key="train/part-1.csv")["Body"].read() == b"x,y\n3,4\n"
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="train/")["Contents"]
    assert [o["Key"] for o in listed] == ["train/part-0.csv", "train/part-1.csv"]
    # A file a job rewrites is not described by the sidecar of the object it replaced.
    store.put_bytes(f"buckets/{bucket}/train/part-0.csv", b"rewritten")
    head = s3.head_object(Bucket=bucket, Key="train/part-0.csv")
    assert head["ContentLength"] == len(b"rewritten")
    assert s3.get_object(Bucket=bucket, Key="train/part-0.csv")["Body"].read() == b"rewritten"


def test_the_naiad_bucket_is_the_store_read_only(
    aws: AwsServer,  # noqa: F811
    s3: Any,
    bucket: str,
) -> None:
    s3.put_object(Bucket=bucket, Key="seen.txt", Body=b"via s3")
    store = LocalArtifactStore(artifacts(aws).as_uri())
    store.put_bytes("runs/r1/artifacts/metrics.json", b"{}")
    top = s3.list_objects_v2(Bucket="naiad", Delimiter="/")
    prefixes = [p["Prefix"] for p in top["CommonPrefixes"]]
    assert "runs/" in prefixes and "buckets/" in prefixes
    inside = s3.list_objects_v2(Bucket="naiad", Prefix="buckets/", Delimiter="/")
    buckets = [p["Prefix"] for p in inside["CommonPrefixes"]]
    assert f"buckets/{bucket}/" in buckets
    assert not any(".naiad-s3" in p for p in buckets)  # S3's own records stay hidden
    body = s3.get_object(Bucket="naiad", Key="runs/r1/artifacts/metrics.json")["Body"].read()
    assert body == b"{}"
    assert s3.get_object(Bucket="naiad", Key=f"buckets/{bucket}/seen.txt")["Body"].read() == (
        b"via s3"
    )
    for write in (
        lambda: s3.put_object(Bucket="naiad", Key="runs/x", Body=b"x"),
        lambda: s3.delete_object(Bucket="naiad", Key="runs/r1/artifacts/metrics.json"),
        lambda: s3.create_multipart_upload(Bucket="naiad", Key="big"),
        lambda: s3.delete_bucket(Bucket="naiad"),
    ):
        with pytest.raises(ClientError) as exc:
            write()
        assert code(exc) == ("AccessDenied", 403)
        assert "read-only" in exc.value.response["Error"]["Message"]
    assert store.get_bytes("runs/r1/artifacts/metrics.json") == b"{}"


def test_an_operation_naiad_does_not_serve_is_named(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.get_bucket_versioning(Bucket=bucket)
    assert code(exc) == ("NotImplemented", 501)
    assert "GetBucketVersioning" in exc.value.response["Error"]["Message"]
    assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] is None


def _signed_streaming_put(
    aws: AwsServer,  # noqa: F811
    path: str,
    chunks: list[bytes],
    tamper: bool = False,
) -> httpx.Response:
    """A PUT signed chunk by chunk (STREAMING-AWS4-HMAC-SHA256-PAYLOAD), as the Java and Go
    SDKs send over http://; boto3 never does, so it is built here from AWS's algorithm."""
    key_id, secret = aws.credentials().values()
    now = datetime.now(UTC)
    amz_date, date = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    credential = sigv4.Credential(key_id, date, "us-east-1", "s3")
    payload = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    headers = {
        "host": aws.url.removeprefix("http://"),
        "x-amz-date": amz_date,
        "x-amz-content-sha256": payload,
        "content-encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(sum(len(c) for c in chunks)),
    }
    names = tuple(sorted(headers))
    signed = sigv4.SignedRequest(credential, names, "", amz_date, payload, False)
    wired = {k: [v] for k, v in headers.items()}
    seed = sigv4.signature(
        secret, signed, sigv4.canonical_request("PUT", path, "", wired, signed, payload)
    )
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={key_id}/{credential.scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={seed}"
    )
    key = sigv4.signing_key(secret, credential)
    body, previous = b"", seed
    for chunk in [*chunks, b""]:
        to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256-PAYLOAD",
                amz_date,
                credential.scope,
                previous,
                hashlib.sha256(b"").hexdigest(),
                hashlib.sha256(chunk).hexdigest(),
            ]
        )
        previous = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        sent = chunk[:-1] + b"!" if tamper and chunk else chunk
        body += f"{len(chunk):x};chunk-signature={previous}\r\n".encode() + sent + b"\r\n"
    return httpx.put(aws.url + path, content=body, headers=headers)


def test_a_body_signed_chunk_by_chunk(aws: AwsServer, s3: Any, bucket: str) -> None:  # noqa: F811
    answer = _signed_streaming_put(aws, f"/{bucket}/streamed", [b"a" * 70000, b"b" * 10])
    assert answer.status_code == 200, answer.text
    assert s3.get_object(Bucket=bucket, Key="streamed")["Body"].read() == b"a" * 70000 + b"b" * 10
    answer = _signed_streaming_put(aws, f"/{bucket}/forged", [b"a" * 100], tamper=True)
    assert answer.status_code == 403 and b"SignatureDoesNotMatch" in answer.content
    assert not (artifacts(aws) / "buckets" / bucket / "forged").exists()
