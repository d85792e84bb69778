"""`naiad keys`: keys for Naiad's API (a Bearer token, NAIAD_TOKEN) that are also access key
pairs for the AWS-compatible APIs (boto3, the SageMaker SDK).

`eval "$(naiad keys env)"` points every AWS client in the shell at this server, signed with
the admin's pair; `naiad keys create` issues a key of your own to hand to a script.
"""

from __future__ import annotations

import shlex
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from naiad.cli import output
from naiad.cli.output import console, handled

if TYPE_CHECKING:
    from naiad.schemas.keys import AdminKey

app = typer.Typer(
    no_args_is_help=True,
    help="Keys for the API and the SageMaker- and S3-compatible APIs: create, list, revoke, env.",
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
DEFAULT_REGION = "us-east-1"


class Shell(StrEnum):
    sh = "sh"
    fish = "fish"
    powershell = "powershell"


@app.command("create")
@handled
def create(
    description: Annotated[
        str, typer.Option("--description", "-d", help="Who or what uses it (up to 200 characters).")
    ] = "",
    read_only: Annotated[bool, typer.Option("--read-only", help="A key that only reads.")] = False,
    expires: Annotated[
        str | None, typer.Option(help="Its lifetime, e.g. 30d or 12h (default: until revoked).")
    ] = None,
    user: Annotated[
        str | None, typer.Option(help="Whose key (an admin's choice; default: your own).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Issue a key; its token and secret are printed this once."""
    days = None if expires is None else output.parse_duration(expires, "--expires") / 86400
    key = output.client().keys.create(
        description=description, read_only=read_only, expires_in_days=days, user=user
    )
    if as_json:
        output.print_json(key)
        return
    owner = f" for {key.user}" if key.user else ""
    print(f"Created key {key.access_key_id}{owner}" + (" (read-only)." if key.read_only else "."))
    print(f"  NAIAD_TOKEN            {key.token}")
    print(f"  aws_access_key_id      {key.access_key_id}")
    print(f"  aws_secret_access_key  {key.secret_access_key}")
    if key.expires_at is not None:
        print(f"  expires                {output.iso_time(key.expires_at)}")
    print(
        "Store them now: they will not be shown again. "
        f"Revoke the key with `naiad keys rm {key.access_key_id}`."
    )


@app.command("ls")
@handled
def list_keys(
    user: Annotated[str | None, typer.Option(help="Only this user's (admins).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Your keys (an admin sees everyone's), never their secrets, oldest first."""
    keys = output.client().keys.list(user=user)
    if as_json:
        output.print_json(keys)
        return
    if not keys:
        console.print(
            "No access keys issued; `naiad keys create` issues one, and `naiad keys env` "
            "prints the admin's."
        )
        return
    table = Table(title="access keys")
    table.add_column("id", no_wrap=True, min_width=20)  # whole: it is what `rm` takes
    for column in ("user", "access", "description", "created", "expires", "last used"):
        table.add_column(column)
    for key in keys:
        table.add_row(
            key.access_key_id,
            escape(key.user or "admin"),
            "read-only" if key.read_only else "read-write",
            escape(key.description) or output.NONE,
            output.relative_time(key.created_at),
            output.iso_time(key.expires_at) if key.expires_at else "never",
            output.relative_time(key.last_used_at) if key.last_used_at else "never",
        )
    console.print(table)


@app.command("rm")
@handled
def remove(access_key_id: Annotated[str, typer.Argument(help="The key's id.")]) -> None:
    """Revoke a key: requests it signs are refused from now on."""
    output.client().keys.delete(access_key_id)
    console.print(f"Revoked access key {access_key_id}.")


SETS = {
    Shell.sh: "export {name}={value}",
    Shell.fish: "set -gx {name} {value};",
    Shell.powershell: "$Env:{name} = {value}",
}


def _quoted(value: str, shell: Shell) -> str:
    if shell is Shell.fish:  # inside fish's single quotes, \\ and \' are the escapes
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if shell is Shell.powershell:  # inside PowerShell's, a quote is doubled
        return "'" + value.replace("'", "''") + "'"
    return shlex.quote(value)


def env_lines(url: str, pair: AdminKey, region: str, shell: Shell) -> list[str]:
    """The four variables boto3 reads (botocore >= 1.31 reads AWS_ENDPOINT_URL for every
    service), as ``shell`` sets them for the commands that follow."""
    values = {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": pair.access_key_id,
        "AWS_SECRET_ACCESS_KEY": pair.secret_access_key,
        "AWS_DEFAULT_REGION": region,
    }
    return [
        SETS[shell].format(name=name, value=_quoted(value, shell)) for name, value in values.items()
    ]


def profile_lines(url: str, pair: AdminKey, region: str, profile: str) -> list[str]:
    """A profile for the shared AWS config file (~/.aws/config): endpoint_url and region,
    with the credentials, which botocore also reads from there."""
    header = "[default]" if profile == "default" else f"[profile {profile}]"
    return [
        header,
        f"endpoint_url = {url}",
        f"region = {region}",
        f"aws_access_key_id = {pair.access_key_id}",
        f"aws_secret_access_key = {pair.secret_access_key}",
    ]


@app.command("env")
@handled
def env(
    region: Annotated[str, typer.Option(help="The region clients sign for.")] = DEFAULT_REGION,
    shell: Annotated[
        Shell, typer.Option(help="How to set the variables: sh (bash, zsh), fish, powershell.")
    ] = Shell.sh,
    profile: Annotated[
        str | None,
        typer.Option(
            help="Print a \\[profile NAME] block for ~/.aws/config instead of variables.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Print the settings that point boto3 at this server: `eval "$(naiad keys env)"`.

    The variables (or with --profile a block for ~/.aws/config) name this server's URL,
    a region and the admin's key pair; boto3, the AWS CLI and the SageMaker SDK read them.
    """
    client = output.client()
    pair = client.keys.admin()
    if profile is not None:
        if not profile.strip() or any(c in profile for c in "[]\n\r"):
            output.fail(f"--profile {profile!r} is not a profile name; use e.g. --profile naiad.")
        lines = profile_lines(client.url, pair, region, profile.strip())
    else:
        lines = env_lines(client.url, pair, region, shell)
    print("\n".join(lines))
