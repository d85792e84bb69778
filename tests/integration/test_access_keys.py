"""Access keys for the AWS-compatible APIs: the REST routes on SQLite and PostgreSQL, then
real boto3 clients and `naiad keys` as a subprocess against a live server."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError
from fastapi.testclient import TestClient

import naiad
from naiad.cli.keys import Shell, env_lines
from naiad.core.errors import NotFound
from naiad.schemas.keys import AdminKey
from naiad.server.compat.keys import admin_pair
from naiad.settings import Settings
from naiad.testing.aws import REGION, AwsServer, aws  # noqa: F401 - a fixture for this module


# -- the REST API ---------------------------------------------------------------------------
def test_issue_list_revoke(api: TestClient) -> None:
    created = api.post("/api/v1/keys", json={"description": "nightly CI"})
    assert created.status_code == 201, created.text
    key = created.json()
    assert set(key) == {
        "access_key_id",
        "secret_access_key",
        "token",
        "description",
        "created_at",
        "last_used_at",
        "user",
        "read_only",
        "expires_at",
    }
    assert key["user"] is None and key["read_only"] is False and key["expires_at"] is None
    assert key["access_key_id"].startswith("NK") and len(key["access_key_id"]) == 20
    assert len(key["secret_access_key"]) == 40
    assert key["description"] == "nightly CI" and key["last_used_at"] is None

    second = api.post("/api/v1/keys", json={}).json()
    listed = api.get("/api/v1/keys")
    assert listed.status_code == 200
    assert [k["access_key_id"] for k in listed.json()] == [
        key["access_key_id"],
        second["access_key_id"],
    ]
    assert key["secret_access_key"] not in listed.text
    assert all("secret_access_key" not in k for k in listed.json())

    gone = api.delete(f"/api/v1/keys/{key['access_key_id']}")
    assert gone.status_code == 204 and gone.content == b""
    assert [k["access_key_id"] for k in api.get("/api/v1/keys").json()] == [second["access_key_id"]]
    again = api.delete(f"/api/v1/keys/{key['access_key_id']}")
    assert again.status_code == 404
    assert again.json()["error"] == "not_found"
    assert "naiad keys ls" in again.json()["message"]


def test_description_is_checked(api: TestClient) -> None:
    too_long = api.post("/api/v1/keys", json={"description": "x" * 201})
    assert too_long.status_code == 422
    assert "description" in too_long.json()["message"]
    assert api.post("/api/v1/keys", json={"description": "a\x00b"}).status_code == 422
    assert api.post("/api/v1/keys", json={"secret": "mine"}).status_code == 422
    assert api.get("/api/v1/keys").json() == []


def test_admin_pair_is_the_tokens(api: TestClient, app: Any) -> None:
    answer = api.get("/api/v1/keys/admin")
    assert answer.status_code == 200
    key_id, secret = admin_pair(app.state.naiad.token)
    assert answer.json() == {"access_key_id": key_id, "secret_access_key": secret}
    refused = api.delete(f"/api/v1/keys/{key_id}")
    assert refused.status_code == 409
    assert "admin token" in refused.json()["message"]
    assert key_id not in api.get("/api/v1/keys").text


def test_keys_need_the_token(app: Any) -> None:
    with TestClient(app) as anonymous:
        for method, path in (
            ("GET", "/api/v1/keys"),
            ("POST", "/api/v1/keys"),
            ("GET", "/api/v1/keys/admin"),
            ("DELETE", "/api/v1/keys/NKAAAAAAAAAAAAAAAAAA"),
        ):
            assert anonymous.request(method, path).status_code == 401, (method, path)


def test_no_admin_pair_without_auth(tmp_path: Path) -> None:
    from naiad.server.app import create_app

    app = create_app(Settings(home=tmp_path / "home", auth=False, warm_start=False))
    try:
        with TestClient(app) as api:
            answer = api.get("/api/v1/keys/admin")
            assert answer.status_code == 409
            assert "without authentication" in answer.json()["message"]
    finally:
        app.state.naiad.engine.dispose()


# -- boto3 against a live server --------------------------------------------------------------
def _rest(server: AwsServer) -> httpx.Client:
    return httpx.Client(
        base_url=f"{server.url}/api/v1",
        headers={"authorization": f"Bearer {server.server.token}"},
        timeout=30,
    )


def _sagemaker(server: AwsServer, key_id: str, secret: str) -> Any:
    return boto3.client(
        "sagemaker",
        endpoint_url=server.url,
        region_name=REGION,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
    )


def _error_code(call: Any) -> str:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]["Code"]


def test_issued_key_signs_until_revoked(aws: AwsServer) -> None:  # noqa: F811
    with _rest(aws) as rest:
        key = rest.post("/keys", json={"description": "boto3"}).json()
        sagemaker = _sagemaker(aws, key["access_key_id"], key["secret_access_key"])
        assert "TrainingJobSummaries" in sagemaker.list_training_jobs()
        used = {k["access_key_id"]: k for k in rest.get("/keys").json()}
        assert used[key["access_key_id"]]["last_used_at"] is not None

        assert rest.delete(f"/keys/{key['access_key_id']}").status_code == 204
        with pytest.raises(ClientError) as refused:  # at once: no cached secret
            sagemaker.list_training_jobs()
        assert refused.value.response["Error"]["Code"] == "UnrecognizedClientException"
        assert "naiad keys create" in refused.value.response["Error"]["Message"]


def test_wrong_secret_is_refused(aws: AwsServer) -> None:  # noqa: F811
    with _rest(aws) as rest:
        key = rest.post("/keys", json={}).json()
    wrong = "x" * 40
    sagemaker = _sagemaker(aws, key["access_key_id"], wrong)
    assert _error_code(sagemaker.list_training_jobs) == "InvalidSignatureException"
    admin_id, _ = admin_pair(aws.server.token)
    admin_wrong = _sagemaker(aws, admin_id, wrong)
    assert _error_code(admin_wrong.list_training_jobs) == "InvalidSignatureException"
    unknown = _sagemaker(aws, "NKNOTISSUEDBYNAIAD00", wrong)
    assert _error_code(unknown.list_training_jobs) == "UnrecognizedClientException"


def test_unsigned_call_is_refused(aws: AwsServer) -> None:  # noqa: F811
    answer = httpx.post(
        aws.url,
        content=b"{}",
        headers={
            "content-type": "application/x-amz-json-1.1",
            "x-amz-target": "SageMaker.ListTrainingJobs",
        },
    )
    assert answer.status_code == 400
    assert answer.headers["x-amzn-errortype"] == "MissingAuthenticationTokenException"
    assert "naiad keys env" in answer.text
    assert "TrainingJobSummaries" not in answer.text


def test_admin_pair_from_the_api_signs(aws: AwsServer) -> None:  # noqa: F811
    with _rest(aws) as rest:
        pair = AdminKey.model_validate(rest.get("/keys/admin").json())
    sagemaker = _sagemaker(aws, pair.access_key_id, pair.secret_access_key)
    assert "TrainingJobSummaries" in sagemaker.list_training_jobs()


def test_sdk_namespace(aws: AwsServer) -> None:  # noqa: F811
    with naiad.Client(url=aws.url, token=aws.server.token) as client:
        kwargs = client.keys.boto3_kwargs(region="eu-west-1")
        assert kwargs["endpoint_url"] == aws.url and kwargs["region_name"] == "eu-west-1"
        assert "TrainingJobSummaries" in boto3.client("sagemaker", **kwargs).list_training_jobs()

        issued = client.keys.create(description="sdk")
        assert issued.access_key_id in [k.access_key_id for k in client.keys.list()]
        own = boto3.client("sagemaker", **client.keys.boto3_kwargs(key=issued))
        assert "TrainingJobSummaries" in own.list_training_jobs()
        client.keys.delete(issued.access_key_id)
        assert issued.access_key_id not in [k.access_key_id for k in client.keys.list()]
        with pytest.raises(NotFound):
            client.keys.delete(issued.access_key_id)


# -- `naiad keys` as a subprocess ------------------------------------------------------------
def _clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """This process's environment without AWS settings, with an empty HOME: a child sees
    only what a test gives it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "NAIAD_"))}
    env["HOME"] = str(tmp_path)
    return {**env, **extra}


def _cli(server: AwsServer, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = _clean_env(tmp_path, NAIAD_HOME=str(server.server.home), NAIAD_URL=server.url)
    return subprocess.run(
        [sys.executable, "-m", "naiad.cli.main", "keys", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr
    return result.stdout


LIST_JOBS = (
    "import boto3; "
    "print(len(boto3.client('sagemaker').list_training_jobs()['TrainingJobSummaries']))"
)


def test_cli_env_configures_boto3(aws: AwsServer, tmp_path: Path) -> None:  # noqa: F811
    printed = _ok(_cli(aws, tmp_path, "env"))
    lines = printed.splitlines()
    assert [line.split("=")[0] for line in lines] == [
        "export AWS_ENDPOINT_URL",
        "export AWS_ACCESS_KEY_ID",
        "export AWS_SECRET_ACCESS_KEY",
        "export AWS_DEFAULT_REGION",
    ]
    assert f"export AWS_ENDPOINT_URL={aws.url}" in lines
    # A shell that evals the output, then a python that knows nothing else.
    script = f'eval "$(cat)"; exec {sys.executable} -c "{LIST_JOBS}"'
    child = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        input=printed,
        env=_clean_env(tmp_path, AWS_CONFIG_FILE=str(tmp_path / "none")),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip().isdigit()


def test_cli_profile_configures_boto3(aws: AwsServer, tmp_path: Path) -> None:  # noqa: F811
    printed = _ok(_cli(aws, tmp_path, "env", "--profile", "naiad", "--region", "eu-west-1"))
    assert printed.splitlines()[:3] == [
        "[profile naiad]",
        f"endpoint_url = {aws.url}",
        "region = eu-west-1",
    ]
    config = tmp_path / "aws-config"
    config.write_text(printed)
    env = _clean_env(tmp_path, AWS_CONFIG_FILE=str(config), AWS_PROFILE="naiad")
    child = subprocess.run(
        [sys.executable, "-c", LIST_JOBS], env=env, capture_output=True, text=True, timeout=120
    )
    assert child.returncode == 0, child.stderr
    refused = _cli(aws, tmp_path, "env", "--profile", "bad]name")
    assert refused.returncode == 1 and refused.stderr.startswith("Error: ")


def test_other_shells() -> None:
    pair = AdminKey(access_key_id="NAKEY", secret_access_key="a+b/c='\\")
    fish = env_lines("http://127.0.0.1:1", pair, "us-east-1", Shell.fish)
    assert fish[2] == "set -gx AWS_SECRET_ACCESS_KEY 'a+b/c=\\'\\\\';"
    powershell = env_lines("http://127.0.0.1:1", pair, "us-east-1", Shell.powershell)
    assert powershell[0] == "$Env:AWS_ENDPOINT_URL = 'http://127.0.0.1:1'"


def test_cli_create_ls_rm(aws: AwsServer, tmp_path: Path) -> None:  # noqa: F811
    shown = _ok(_cli(aws, tmp_path, "create", "--description", "laptop"))
    assert "will not be shown again" in shown
    key_id = next(line.split()[1] for line in shown.splitlines() if "aws_access_key_id" in line)
    secret = next(line.split()[1] for line in shown.splitlines() if "secret" in line)
    assert "TrainingJobSummaries" in _sagemaker(aws, key_id, secret).list_training_jobs()

    as_json = json.loads(_ok(_cli(aws, tmp_path, "create", "--json")))
    assert set(as_json) >= {"access_key_id", "secret_access_key"}

    table = _ok(_cli(aws, tmp_path, "ls"))
    assert key_id in table and "laptop" in table and as_json["access_key_id"] in table
    assert secret not in table and as_json["secret_access_key"] not in table
    listed = json.loads(_ok(_cli(aws, tmp_path, "ls", "--json")))
    assert {key_id, as_json["access_key_id"]} <= {k["access_key_id"] for k in listed}

    assert key_id in _ok(_cli(aws, tmp_path, "rm", key_id))
    again = _cli(aws, tmp_path, "rm", key_id)
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert again.stderr.strip().splitlines() == [again.stderr.strip()]
    assert "naiad keys ls" in again.stderr
