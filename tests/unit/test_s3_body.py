"""Request bodies as Naiad's S3 API reads them: aws-chunked framing fed in any pieces,
chunk signatures checked against AWS's published examples, and every stated digest
checked when the body ends (before anything is kept)."""

import base64
import hashlib
import zlib
from collections.abc import Callable

import anyio
import anyio.to_thread
import pytest

from naiad.server.compat import sigv4
from naiad.server.compat.s3.body import AwsChunked, ChunkSigner, Payload
from naiad.server.compat.s3.errors import S3Error

# AWS's worked examples of signed streaming uploads (sigv4-streaming.html and
# sigv4-streaming-trailers.html): 65,536 and 1,024 bytes of 'a'.
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
PLAIN = (
    "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
    [
        "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
        "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
        "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
    ],
    b"",
)
TRAILER = (
    "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e",
    [
        "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
        "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
        "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
    ],
    b"x-amz-checksum-crc32c:sOO8/Q==\r\nx-amz-trailer-signature:"
    b"d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n",
)


def signer(seed: str) -> ChunkSigner:
    key = sigv4.signing_key(SECRET, sigv4.Credential("AKID", "20130524", "us-east-1", "s3"))
    return ChunkSigner(key, "20130524T000000Z", "20130524/us-east-1/s3/aws4_request", seed)


def signed_body(signatures: list[str], trailers: bytes) -> bytes:
    return (
        f"10000;chunk-signature={signatures[0]}\r\n".encode()
        + b"a" * 65536
        + f"\r\n400;chunk-signature={signatures[1]}\r\n".encode()
        + b"a" * 1024
        + f"\r\n0;chunk-signature={signatures[2]}\r\n".encode()
        + trailers
        + b"\r\n"
    )


def feed(decoder: AwsChunked, body: bytes, step: int) -> bytes:
    return b"".join(decoder.feed(body[i : i + step]) for i in range(0, len(body), step))


@pytest.mark.parametrize("example", [PLAIN, TRAILER], ids=["plain", "trailer"])
@pytest.mark.parametrize("step", [1, 7, 65536, 10**6])
def test_awss_signed_examples_decode(example: tuple[str, list[str], bytes], step: int) -> None:
    seed, signatures, trailers = example
    decoder = AwsChunked(signer(seed))
    assert feed(decoder, signed_body(signatures, trailers), step) == b"a" * 66560
    assert decoder.done
    if trailers:
        assert decoder.trailers == {"x-amz-checksum-crc32c": "sOO8/Q=="}


def test_every_split_of_a_small_unsigned_body_decodes_the_same() -> None:
    body = b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n"
    for cut in range(len(body) + 1):
        decoder = AwsChunked()
        assert decoder.feed(body[:cut]) + decoder.feed(body[cut:]) == b"hello world"
        assert decoder.done and decoder.trailers == {"x-amz-checksum-crc32": "DUoRhQ=="}


@pytest.mark.parametrize(
    "change",
    [
        lambda b: b.replace(b"a" * 1024, b"a" * 1023 + b"b"),  # a data byte
        lambda b: b.replace(b"ad80c730", b"ad80c731"),  # a chunk's signature
        lambda b: b.replace(b"d81f82fc", b"d81f82fd"),  # the trailer's signature
        lambda b: b.replace(b"sOO8/Q==", b"sOO8/R=="),  # a signed trailer
    ],
)
def test_a_changed_signed_body_is_refused(change: Callable[[bytes], bytes]) -> None:
    for seed, signatures, trailers in (PLAIN, TRAILER):
        body = signed_body(signatures, trailers)
        changed = change(body)
        if changed == body:
            continue
        with pytest.raises(S3Error) as exc:
            feed(AwsChunked(signer(seed)), changed, 4096)
        assert (exc.value.code, exc.value.status) == ("SignatureDoesNotMatch", 403)


@pytest.mark.parametrize(
    "body",
    [b"zz\r\nhello\r\n0\r\n\r\n", b"5\r\nhello!!\r\n0\r\n\r\n", b"5;chunk-signature=x\r\n"],
)
def test_broken_framing_is_a_400(body: bytes) -> None:
    with pytest.raises(S3Error) as exc:
        AwsChunked().feed(body)
    assert (exc.value.code, exc.value.status) == ("InvalidRequest", 400)


# -- Payload: what a request states about its body, checked at its end ------------------


def crc32(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def receiver(pieces: list[bytes]) -> Callable[[], object]:
    queue = list(pieces)

    async def receive() -> dict[str, object]:
        body = queue.pop(0)
        return {"type": "http.request", "body": body, "more_body": bool(queue)}

    return receive


def read(pieces: list[bytes], headers: dict[str, str], payload_hash: str, limit: int = 1 << 20):
    """The body as a worker thread reads it from a Payload (what PutObject does)."""

    async def main() -> bytes:
        payload = Payload(receiver(pieces), headers, payload_hash, limit)  # type: ignore[arg-type]
        reader = payload.reader()
        data = await anyio.to_thread.run_sync(reader.read)
        assert payload.etag == f'"{hashlib.md5(data).hexdigest()}"'
        return data

    return anyio.run(main)


def test_a_plain_body_with_its_sha256_crc32_and_md5() -> None:
    data = b"hello world" * 1000
    headers = {
        "content-length": str(len(data)),
        "x-amz-checksum-crc32": crc32(data),
        "content-md5": base64.b64encode(hashlib.md5(data).digest()).decode(),
    }
    sha = hashlib.sha256(data).hexdigest()
    assert read([data[:100], data[100:5000], data[5000:]], headers, sha) == data


@pytest.mark.parametrize(
    ("headers", "payload_hash", "code"),
    [
        ({}, hashlib.sha256(b"other").hexdigest(), "XAmzContentSHA256Mismatch"),
        ({"x-amz-checksum-crc32": crc32(b"other")}, "UNSIGNED-PAYLOAD", "BadDigest"),
        (
            {"content-md5": base64.b64encode(hashlib.md5(b"x").digest()).decode()},
            "UNSIGNED-PAYLOAD",
            "BadDigest",
        ),
        ({"content-md5": "not base64"}, "UNSIGNED-PAYLOAD", "InvalidDigest"),
        ({"content-length": "99"}, "UNSIGNED-PAYLOAD", "IncompleteBody"),
    ],
)
def test_a_body_that_breaks_what_is_stated_is_refused(
    headers: dict[str, str], payload_hash: str, code: str
) -> None:
    with pytest.raises(S3Error) as exc:
        read([b"hello", b" world"], headers, payload_hash)
    assert exc.value.code == code


def test_an_aws_chunked_body_as_boto3_sends_it_over_https() -> None:
    data = b"x" * 70000
    body = (
        b"%x\r\n" % len(data)
        + data
        + b"\r\n0\r\nx-amz-checksum-crc32:"
        + crc32(data).encode()
        + b"\r\n\r\n"
    )
    headers = {
        "content-encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(data)),
        "x-amz-trailer": "x-amz-checksum-crc32",
    }
    pieces = [body[i : i + 3000] for i in range(0, len(body), 3000)]
    assert read(pieces, headers, "STREAMING-UNSIGNED-PAYLOAD-TRAILER") == data
    bad = body.replace(crc32(data).encode(), crc32(b"other").encode())
    with pytest.raises(S3Error) as exc:
        read([bad], headers, "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
    assert exc.value.code == "BadDigest"
    with pytest.raises(S3Error) as exc:
        read([body[:-10]], headers, "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
    assert exc.value.code == "IncompleteBody"


def test_a_body_over_the_limit_is_refused_by_its_length_or_as_it_streams() -> None:
    with pytest.raises(S3Error) as exc:
        read([b"x" * 10], {"content-length": "10"}, "UNSIGNED-PAYLOAD", limit=5)
    assert exc.value.code == "EntityTooLarge"
    with pytest.raises(S3Error) as exc:
        read([b"x" * 4, b"x" * 4], {}, "UNSIGNED-PAYLOAD", limit=5)
    assert exc.value.code == "EntityTooLarge"
