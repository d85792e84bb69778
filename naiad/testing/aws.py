"""A live Naiad server and boto3 clients signed with its admin key pair, as a user would
configure them: the suites of the AWS-compatible APIs drive Naiad with the real clients."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def aws_server(home: Path, env: dict[str, str] | None = None) -> Iterator[AwsServer]:
    """A live server on ``home``; stopped on the way out with the replicas it started
    (they outlive a server by design)."""
    server = LiveServer(home=home, env={"NAIAD_WARM_START": "false", **(env or {})})
    server.start()
    try:
        yield AwsServer(server)
    finally:
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
        with aws_server(home) as server:
            yield server
        return
    admin = request.getfixturevalue("postgres_url")
    with (
        postgres.scratch_database(admin) as url,
        aws_server(home, {"NAIAD_DATABASE_URL": url}) as server,
    ):
        yield server


def sdk_virtualenv(venv: Path, requirement: str) -> Path:
    """The python of a virtualenv holding the SageMaker Python SDK, made once: the SDK pins
    packages of its own, so it lives beside the project's venv, as a notebook kernel would.
    uv resolves and installs it (about 40 s on a cold cache, where pip took 4 minutes to
    resolve v3's pins). Skipped without a package index, but failed when CI=true, where it
    must install."""
    import subprocess
    import sys

    from uv import find_uv_bin

    python = venv / "bin" / "python"
    if not (venv / ".installed").exists():
        uv = find_uv_bin()
        subprocess.run(
            [uv, "venv", "--quiet", "--clear", "--python", sys.executable, str(venv)], check=True
        )
        install = subprocess.run(
            [uv, "pip", "install", "--quiet", "--python", str(python), requirement],
            capture_output=True,
            text=True,
            timeout=1200,
        )
        if install.returncode != 0:
            problem = f"the SageMaker Python SDK ({requirement}) did not install: "
            problem += install.stderr[-500:]
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(problem)
            pytest.skip(problem)
        (venv / ".installed").touch()
    return python


def sdk_environment(server: AwsServer, home: Path, config: str) -> dict[str, str]:
    """What docs/sagemaker.md tells a user to set, and nothing of this machine's own AWS
    set-up: the endpoint, the keys, the region, and the SDK's config file (``config``)."""
    (home / "sagemaker-config.yaml").write_text(config)
    credentials = server.credentials()
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "AWS_ENDPOINT_URL": server.url,
        "AWS_ACCESS_KEY_ID": credentials["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": credentials["aws_secret_access_key"],
        "AWS_DEFAULT_REGION": REGION,
        "SAGEMAKER_USER_CONFIG_OVERRIDE": str(home / "sagemaker-config.yaml"),
    }
