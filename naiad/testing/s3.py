"""A real S3-compatible server for tests: moto's standalone server on a free local port.

Suites that need s3:// import the `s3_server` fixture; it speaks HTTP like any
S3-compatible endpoint, so the code under test runs unmodified.
"""

import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

# moto accepts any credentials; boto3 only needs some to sign requests.
FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "naiad-test",
    "AWS_SECRET_ACCESS_KEY": "naiad-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass(frozen=True)
class S3Server:
    """Where the server listens and a bucket it already holds."""

    endpoint_url: str
    bucket: str

    def client(self) -> Any:
        """A boto3 S3 client aimed at this server."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url)

    def create_bucket(self, name: str | None = None) -> str:
        """Create a fresh bucket (a random name unless given) and return its name."""
        name = name or f"naiad-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def fresh_uri(self) -> str:
        """An unused `s3://bucket/prefix` for one test, so tests never share keys."""
        return f"s3://{self.bucket}/t-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """Start moto on 127.0.0.1 (port chosen by the OS), yield it, stop it by its handle."""
    from moto.server import ThreadedMotoServer

    saved = {k: os.environ.get(k) for k in FAKE_ENV}
    os.environ.update(FAKE_ENV)  # never sign test requests with someone's real keys
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        info = S3Server(endpoint_url=f"http://{host}:{port}", bucket="naiad-test")
        info.create_bucket(info.bucket)
        yield info
    finally:
        server.stop()
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


class StoppableS3:
    """A moto server on a port of its own that can be stopped and started again at will, as
    an object store goes away and comes back (its objects live in this process, so they
    outlive a stop). Sign requests to it with ``FAKE_ENV``'s credentials."""

    def __init__(self) -> None:
        from naiad.testing.live import free_port

        self.port = free_port()
        self.server: Any = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
