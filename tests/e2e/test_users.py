"""Users on a shared server: an admin adds them from the CLI; each signs in with
`naiad login`, acts with their role through the SDK, the CLI and boto3 (one key serves
both), and is refused at once when their key is revoked or expired or they are disabled."""

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError

import naiad
from naiad.core.errors import Forbidden, Unauthorized
from naiad.testing.live import LiveServer


def _cli(live: LiveServer, *args: str, stdin: str = "", env: dict[str, str] | None = None):
    return subprocess.run(
        [sys.executable, "-m", "naiad.cli.main", *args],
        input=stdin,
        env=env or live.environ(),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def admin(live: LiveServer) -> naiad.Client:
    return naiad.Client(url=live.url, token=live.token)


@pytest.fixture(scope="module")
def people(live: LiveServer, admin: naiad.Client) -> dict[str, str]:
    """ana (editor), vic (viewer) and eve (editor), created with the CLI; their passwords."""
    passwords = {"ana": "ana-password-1", "vic": "vic-password-1", "eve": "eve-password-1"}
    for name, role in (("ana", "editor"), ("vic", "viewer"), ("eve", "editor")):
        made = _cli(live, "users", "create", name, "--role", role, "--password-stdin",
                    stdin=passwords[name] + "\n")  # fmt: skip
        assert made.returncode == 0, made.stderr
    return passwords


def _key(live: LiveServer, user: str, password: str, **extra: object) -> str:
    answer = httpx.post(
        f"{live.url}/api/v1/login", json={"user": user, "password": password, **extra}
    )
    assert answer.status_code == 201, answer.text
    return answer.json()["token"]


def test_login_stores_a_key_and_the_sdk_and_cli_act_as_that_user(
    live: LiveServer, people: dict[str, str], tmp_path: Path
) -> None:
    listed = _cli(live, "users", "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    roles = {u["name"]: u["role"] for u in json.loads(listed.stdout)}
    assert roles == {"ana": "editor", "vic": "viewer", "eve": "editor"}
    assert "ana-password-1" not in listed.stdout

    laptop = {  # another machine: no server of its own, nothing but what login stores
        **{k: v for k, v in os.environ.items() if not k.startswith("NAIAD_")},
        "NAIAD_HOME": str(tmp_path / "laptop"),
    }
    signed = _cli(live, "login", live.url, "--user", "ana", "--password-stdin",
                  stdin="ana-password-1\n", env=laptop)  # fmt: skip
    assert signed.returncode == 0, signed.stderr
    assert "as ana (editor)" in signed.stdout
    stored = tmp_path / "laptop" / "credentials.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert "ana-password-1" not in stored.read_text()

    who = _cli(live, "whoami", "--json", env=laptop)
    assert who.returncode == 0, who.stderr
    me = json.loads(who.stdout)
    assert me == {"name": "ana", "role": "editor", "read_only": False, "user": True, "projects": {}}

    made = subprocess.run(
        [sys.executable, "-c",
         "import naiad\n"
         "c = naiad.Client()\n"
         "c.experiments.create('ana-exp')\n"
         "print(c.runs.create('ana-exp', name='r').id)\n"],
        env=laptop, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    run_id = made.stdout.strip()

    mine = _cli(live, "runs", "ls", "--created-by", "ana", "--json", env=laptop)
    assert mine.returncode == 0, mine.stderr
    assert [(r["id"], r["created_by"]) for r in json.loads(mine.stdout)] == [(run_id, "ana")]
    others = _cli(live, "runs", "ls", "--created-by", "vic", "--json", env=laptop)
    assert json.loads(others.stdout) == []

    token = json.loads(stored.read_text())["servers"][live.url]["token"]
    out = _cli(live, "logout", env=laptop)
    assert out.returncode == 0, out.stderr
    refused = httpx.get(f"{live.url}/api/v1/users/me", headers={"authorization": f"Bearer {token}"})
    assert refused.status_code == 401  # the key was revoked, not only forgotten
    assert live.url not in json.loads(stored.read_text()).get("servers", {})

    wrong = _cli(live, "login", live.url, "--user", "ana", "--password-stdin",
                 stdin="not-her-password\n", env=laptop)  # fmt: skip
    assert wrong.returncode == 1
    assert "do not match" in wrong.stderr and "Traceback" not in wrong.stderr


def test_roles_decide_what_each_user_may_do(
    live: LiveServer, admin: naiad.Client, people: dict[str, str]
) -> None:
    ana = naiad.Client(url=live.url, token=_key(live, "ana", people["ana"]))
    vic = naiad.Client(url=live.url, token=_key(live, "vic", people["vic"]))
    eve = naiad.Client(url=live.url, token=_key(live, "eve", people["eve"]))

    admin.experiments.create("roles")
    admins_run = admin.runs.create("roles", name="by-admin")
    anas_run = ana.runs.create("roles", name="by-ana")
    assert anas_run.created_by == "ana" and admins_run.created_by == "admin"

    assert {r.id for r in vic.runs.list(experiment="roles")} == {admins_run.id, anas_run.id}
    with pytest.raises(Forbidden, match=r"needs the editor role.*user 'vic', whose role is viewer"):
        vic.runs.create("roles", name="nope")
    with pytest.raises(Forbidden, match="needs the admin role"):
        ana.users.list()
    with pytest.raises(Forbidden, match="needs the admin role"):
        ana.audit.list()

    with pytest.raises(Forbidden, match="which ana created"):
        eve.runs.delete(anas_run.id)  # an editor deletes only what they created
    with pytest.raises(Forbidden, match="which admin created"):
        ana.runs.delete(admins_run.id)
    ana.runs.delete(anas_run.id)
    admin.runs.delete(admins_run.id)  # the admin deletes anything

    read_only = ana.keys.create(description="dashboards", read_only=True)
    dashboards = naiad.Client(url=live.url, token=read_only.token)
    assert dashboards.users.me().read_only
    assert dashboards.runs.list(experiment="roles") == []
    with pytest.raises(Forbidden, match="read-only key of user 'ana'"):
        dashboards.runs.create("roles", name="nope")
    with pytest.raises(Forbidden, match="read-only keys"):
        dashboards.keys.create()  # it cannot mint itself a stronger key

    assert {k.access_key_id for k in vic.keys.list()} <= {
        k.access_key_id for k in admin.keys.list(user="vic")
    }
    with pytest.raises(Forbidden):
        vic.keys.list(user="ana")

    admin.users.update("vic", role="editor")  # the role is read on every call
    vic.runs.create("roles", name="now-allowed")
    admin.users.update("vic", role="viewer")


def test_a_revoked_expired_or_disabled_key_is_refused_at_once(
    live: LiveServer, admin: naiad.Client, people: dict[str, str]
) -> None:
    eve = naiad.Client(url=live.url, token=_key(live, "eve", people["eve"]))
    short = eve.keys.create(description="short", expires_in_days=2 / 86400)  # 2 seconds
    doomed = eve.keys.create(description="doomed")
    naiad.Client(url=live.url, token=doomed.token).users.me()

    eve.keys.delete(doomed.access_key_id)
    with pytest.raises(Unauthorized, match="revoked"):
        naiad.Client(url=live.url, token=doomed.token).users.me()

    time.sleep(max(0.0, (short.expires_at.timestamp() - time.time()) + 0.2))
    with pytest.raises(Unauthorized, match="expired"):
        naiad.Client(url=live.url, token=short.token).users.me()

    off = _cli(live, "users", "disable", "eve")
    assert off.returncode == 0 and "refused" in off.stdout, off.stderr
    with pytest.raises(Unauthorized):
        eve.users.me()
    refused = httpx.post(
        f"{live.url}/api/v1/login", json={"user": "eve", "password": people["eve"]}
    )
    assert refused.status_code == 401
    assert _cli(live, "users", "enable", "eve").returncode == 0
    assert eve.users.me().name == "eve"

    forged = doomed.token[:-4] + "AAAA"
    assert httpx.get(f"{live.url}/api/v1/runs",
                     headers={"authorization": f"Bearer {forged}"}).status_code == 401  # fmt: skip


def test_the_same_key_signs_aws_requests_with_the_users_role(
    live: LiveServer, admin: naiad.Client, people: dict[str, str]
) -> None:
    ana = naiad.Client(url=live.url, token=_key(live, "ana", people["ana"]))
    vic = naiad.Client(url=live.url, token=_key(live, "vic", people["vic"]))
    anas, vics = ana.keys.create(description="boto3"), vic.keys.create(description="boto3")

    as_ana = boto3.client("s3", **ana.keys.boto3_kwargs(key=anas))
    as_ana.create_bucket(Bucket="ana-bucket")
    as_ana.put_object(Bucket="ana-bucket", Key="k", Body=b"v")

    as_vic = boto3.client("s3", **vic.keys.boto3_kwargs(key=vics))
    assert as_vic.get_object(Bucket="ana-bucket", Key="k")["Body"].read() == b"v"
    with pytest.raises(ClientError) as denied:
        as_vic.put_object(Bucket="ana-bucket", Key="k", Body=b"overwritten")
    assert denied.value.response["Error"]["Code"] == "AccessDenied"
    assert "editor role" in denied.value.response["Error"]["Message"]
    assert as_ana.get_object(Bucket="ana-bucket", Key="k")["Body"].read() == b"v"

    sagemaker = boto3.client("sagemaker", **vic.keys.boto3_kwargs(key=vics))
    sagemaker.list_training_jobs()
    with pytest.raises(ClientError) as denied:
        sagemaker.delete_endpoint(EndpointName="anything")
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"

    events = admin.audit.list(actor="user:ana")
    assert any(e.action == "PUT" and e.path == "/ana-bucket/k" for e in events)


def test_repeated_wrong_passwords_hold_that_name_for_a_while(
    live: LiveServer, admin: naiad.Client, people: dict[str, str], tmp_path: Path
) -> None:
    admin.users.create("tom", role="viewer", password="tom-password-1")
    login = f"{live.url}/api/v1/login"
    for _ in range(5):
        wrong = httpx.post(login, json={"user": "tom", "password": "guess-guess"})
        assert wrong.status_code == 401
    held = httpx.post(login, json={"user": "tom", "password": "tom-password-1"})
    assert held.status_code == 429, held.text  # even the right password, for now
    assert "Too many failed sign-ins for user 'tom': try again in" in held.json()["message"]
    laptop = {
        **{k: v for k, v in os.environ.items() if not k.startswith("NAIAD_")},
        "NAIAD_HOME": str(tmp_path / "laptop"),
    }
    cli = _cli(live, "login", live.url, "--user", "tom", "--password-stdin",
               stdin="tom-password-1\n", env=laptop)  # fmt: skip
    assert cli.returncode == 1 and "Too many failed sign-ins" in cli.stderr
    assert "Traceback" not in cli.stderr
    form = httpx.post(  # the console's form counts with the same throttle
        f"{live.url}/login",
        data={"user": "tom", "password": "tom-password-1"},
        headers={"origin": live.url},
    )
    assert form.status_code == 429 and "Too many failed sign-ins" in form.text
    _key(live, "ana", people["ana"])  # other names sign in as before
    admin.users.delete("tom")


def test_passwords_change_and_bad_input_is_refused_clearly(
    live: LiveServer, admin: naiad.Client, people: dict[str, str]
) -> None:
    with pytest.raises(Exception, match="8 to 1024 characters"):
        admin.users.create("shorty", password="short")
    with pytest.raises(Exception, match="reserved"):
        admin.users.create("admin", password="long-enough-1")
    with pytest.raises(Exception, match="not valid"):
        admin.users.create("Bad Name", password="long-enough-1")
    with pytest.raises(Exception, match="already exists"):
        admin.users.create("ana", password="long-enough-1")

    admin.users.create("pat", role="viewer", password="first-password")
    pat = naiad.Client(url=live.url, token=_key(live, "pat", "first-password"))
    with pytest.raises(Forbidden, match="current password"):
        pat.users.change_password("wrong-current", "second-password")
    pat.users.change_password("first-password", "second-password")
    old = httpx.post(f"{live.url}/api/v1/login", json={"user": "pat", "password": "first-password"})
    assert old.status_code == 401
    _key(live, "pat", "second-password")

    admin.users.delete("pat")
    with pytest.raises(Unauthorized):
        pat.users.me()  # a deleted user's keys go with them
