"""`naiad connections`: named credentials that SQL and DynamoDB input channels read with.

A job names a connection (`sql://NAME`), never its password: the secret stays on the
server, is shown masked, and reaches only the job's own processes.
"""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from naiad.cli import output
from naiad.cli.output import console, handled

app = typer.Typer(
    no_args_is_help=True,
    help="Named database and DynamoDB credentials for input channels: create, ls, check, rm.",
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


class Kind(StrEnum):
    sql = "sql"
    dynamodb = "dynamodb"


def _secret(value: str | None, env: str | None, prompt: str) -> str | None:
    """A secret from an option, an environment variable, or a hidden prompt (so it need
    not sit in the shell's history); '-' reads one line from stdin."""
    if value == "-":
        return sys.stdin.readline().rstrip("\n")
    if value:
        return value
    if env:
        if env not in os.environ:
            output.fail(f"The environment variable {env} is not set.")
        return os.environ[env]
    if sys.stdin.isatty():
        return typer.prompt(prompt, hide_input=True)
    return None


@app.command("create")
@handled
def create(
    name: Annotated[str, typer.Argument(help="The name channels use: sql://NAME.")],
    kind: Annotated[Kind, typer.Option("--kind", "-k", help="sql or dynamodb.")] = Kind.sql,
    url: Annotated[
        str | None,
        typer.Option(
            help="sql: the database URL, e.g. postgresql://user:password@host:5432/db "
            "('-' reads it from stdin; left out, it is asked for without echo)."
        ),
    ] = None,
    url_env: Annotated[
        str | None, typer.Option(help="sql: read the URL from this environment variable.")
    ] = None,
    endpoint_url: Annotated[str | None, typer.Option(help="dynamodb: the service's URL.")] = None,
    region: Annotated[str | None, typer.Option(help="dynamodb: the region.")] = None,
    access_key_id: Annotated[str | None, typer.Option(help="dynamodb: the key id.")] = None,
    secret_access_key: Annotated[
        str | None,
        typer.Option(help="dynamodb: the secret ('-': stdin; left out with a key id: asked)."),
    ] = None,
    description: Annotated[str, typer.Option("--description", "-d")] = "",
    replace: Annotated[bool, typer.Option(help="Change an existing connection.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Store a connection on the server; its secret is never shown again."""
    if kind is Kind.sql:
        url = _secret(url, url_env, "Database URL")
    elif access_key_id:
        secret_access_key = _secret(secret_access_key, None, "Secret access key")
    connection = output.client().connections.create(
        name,
        kind.value,
        url=url,
        endpoint_url=endpoint_url,
        region=region,
        access_key_id=access_key_id,
        secret_access_key=secret_access_key,
        description=description,
        replace=replace,
    )
    if as_json:
        output.print_json(connection)
        return
    where = connection.url or connection.endpoint_url or "the default AWS endpoint"
    scheme = "sql://" if kind is Kind.sql else "dynamodb://TABLE with connection "
    console.print(
        f"Stored connection {name} ({escape(where)}); channels name it as {scheme}{name}."
    )


@app.command("ls")
@handled
def list_connections(as_json: JsonOption = False) -> None:
    """Stored connections, secrets masked."""
    found = output.client().connections.list()
    if as_json:
        output.print_json(found)
        return
    if not found:
        console.print("No connections; `naiad connections create NAME --url ...` stores one.")
        return
    table = Table(title="connections")
    for column in ("name", "kind", "where", "description", "updated"):
        table.add_column(column)
    for c in found:
        table.add_row(
            c.name,
            c.kind,
            escape(c.url or c.endpoint_url or output.NONE),
            escape(c.description) or output.NONE,
            output.relative_time(c.updated_at),
        )
    console.print(table)


@app.command("show")
@handled
def show(name: str, as_json: JsonOption = False) -> None:
    """One connection, secrets masked."""
    c = output.client().connections.get(name)
    if as_json:
        output.print_json(c)
        return
    for label, value in (
        ("name", c.name),
        ("kind", c.kind),
        ("url", c.url),
        ("endpoint", c.endpoint_url),
        ("region", c.region),
        ("access key id", c.access_key_id),
        ("secret", "stored" if c.has_secret else "none"),
        ("description", c.description),
        ("updated", output.iso_time(c.updated_at)),
    ):
        if value:
            console.print(f"{label:<14} {escape(str(value))}")


@app.command("check")
@handled
def check(name: str) -> None:
    """Reach the service once with the stored credentials (exit 1 when it cannot)."""
    result = output.client().connections.check(name)
    if not result.ok:
        output.fail(f"Connection {name}: {result.message}")
    console.print(f"Connection {name}: {escape(result.message)}")


@app.command("rm")
@handled
def remove(name: str) -> None:
    """Forget a connection; jobs naming it then fail before training, saying so."""
    output.client().connections.delete(name)
    console.print(f"Deleted connection {name}.")
