"""A live Naiad server and boto3 clients signed with its admin key pair, as a user would
configure them: the suites of the AWS-compatible APIs drive Naiad with the real clients."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from naiad.server.compat.keys import admin_pair
from naiad.testing import postgres
from naiad.testing.endpoints import kill_replicas
from naiad.testing.live import LiveServer

REGION = "us-east-1"


@dataclass
class AwsServer:
    server: LiveServer

    @property
    def url(self) -> str:
        return self.server.url

    def credentials(self) -> dict[str, str]:
        key_id, secret = admin_pair(self.server.token)
        return {"aws_access_key_id": key_id, "aws_secret_access_key": secret}

    def client(self, service: str, **kwargs: Any) -> Any:
        """``boto3.client(service)`` aimed at this server, as docs/sagemaker.md shows."""
        import boto3

        options = {"endpoint_url": self.url, "region_name": REGION, **self.credentials()}
        return boto3.client(service, **{**options, **kwargs})


def start_aws_server(home: Path, env: dict[str, str] | None = None) -> LiveServer:
    server = LiveServer(home=home, env={"NAIAD_WARM_START": "false", **(env or {})})
    server.start()
    return server


def stop_aws_server(server: LiveServer) -> None:
    """Stop the server and the replicas it started (they outlive a server by design)."""
    server.stop()
    kill_replicas(server.home)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def aws(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AwsServer]:
    """One live server per test module and store: SQLite, then PostgreSQL (a scratch
    database of its own), so the same boto3 calls run on both."""
    home = tmp_path_factory.mktemp("aws") / "home"
    if request.param == "sqlite":
        server = start_aws_server(home)
        try:
            yield AwsServer(server)
        finally:
            stop_aws_server(server)
        return
    admin = request.getfixturevalue("postgres_url")
    with postgres.scratch_database(admin) as url:
        server = start_aws_server(home, {"NAIAD_DATABASE_URL": url})
        try:
            yield AwsServer(server)
        finally:
            stop_aws_server(server)
