"""`naiad users`: who may sign in to a shared server and with which role (an admin's
commands); `naiad login`, `naiad logout` and `naiad whoami` for everyone.

A password is read from a hidden prompt, or from stdin with --password-stdin (scripts);
never from an argument, where `ps` and the shell's history would keep it.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from naiad.cli import output
from naiad.cli.output import console, handled

app = typer.Typer(
    no_args_is_help=True, help="Users of a shared server: create, list, update, remove."
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from stdin (for scripts).")
]


class RoleOption(StrEnum):
    viewer = "viewer"
    editor = "editor"
    admin = "admin"


def read_password(from_stdin: bool, prompt: str = "Password", confirm: bool = False) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm)
    else:
        output.fail("No terminal to ask the password on; pass it on stdin with --password-stdin.")
    if not password:
        output.fail("The password is empty.")
    return password


@app.command("create")
@handled
def create(
    name: Annotated[str, typer.Argument(help="Lowercase letters, digits, '.', '_', '-'.")],
    role: Annotated[RoleOption, typer.Option(help="What they may do.")] = RoleOption.viewer,
    no_password: Annotated[
        bool, typer.Option("--no-password", help="No password: the user signs in with keys only.")
    ] = False,
    password_stdin: PasswordStdin = False,
    as_json: JsonOption = False,
) -> None:
    """Add a user (asks for their first password)."""
    password = None if no_password else read_password(password_stdin, confirm=True)
    user = output.client().users.create(name, role=role.value, password=password)
    if as_json:
        output.print_json(user)
        return
    console.print(f"Created user {escape(user.name)} ({user.role}).")


@app.command("ls")
@handled
def list_users(as_json: JsonOption = False) -> None:
    """Users, by name."""
    users = output.client().users.list()
    if as_json:
        output.print_json(users)
        return
    if not users:
        console.print("No users yet; `naiad users create NAME --role editor` adds one.")
        return
    table = Table(title="users")
    for column in ("name", "role", "status", "password", "created", "by"):
        table.add_column(column)
    for user in users:
        table.add_row(
            escape(user.name),
            user.role,
            "disabled" if user.disabled else "enabled",
            "set" if user.has_password else "none",
            output.relative_time(user.created_at),
            escape(user.created_by or output.NONE),
        )
    console.print(table)


@app.command("update")
@handled
def update(
    name: Annotated[str, typer.Argument(help="The user.")],
    role: Annotated[RoleOption | None, typer.Option(help="A new role.")] = None,
    disable: Annotated[
        bool | None,
        typer.Option("--disable/--enable", help="Stop (or allow again) their keys and sessions."),
    ] = None,
    password: Annotated[
        bool, typer.Option("--password", help="Set a new password (asked for).")
    ] = False,
    password_stdin: PasswordStdin = False,
    as_json: JsonOption = False,
) -> None:
    """Change a user's role, password, or whether they may sign in."""
    secret = read_password(password_stdin, confirm=True) if password or password_stdin else None
    if role is None and disable is None and secret is None:
        output.fail("Nothing to change: give --role, --disable/--enable or --password.")
    user = output.client().users.update(
        name, role=role.value if role else None, disabled=disable, password=secret
    )
    if as_json:
        output.print_json(user)
        return
    state = "disabled" if user.disabled else "enabled"
    console.print(f"User {escape(user.name)}: {user.role}, {state}.")


@app.command("disable")
@handled
def disable(name: Annotated[str, typer.Argument(help="The user.")]) -> None:
    """Stop a user at once: their keys and console sessions are refused (kept for enable)."""
    output.client().users.update(name, disabled=True)
    console.print(f"Disabled user {escape(name)}: their keys and sessions are refused.")


@app.command("enable")
@handled
def enable(name: Annotated[str, typer.Argument(help="The user.")]) -> None:
    """Let a disabled user sign in again (their keys work again)."""
    output.client().users.update(name, disabled=False)
    console.print(f"Enabled user {escape(name)}.")


@app.command("rm")
@handled
def remove(name: Annotated[str, typer.Argument(help="The user.")]) -> None:
    """Delete a user and every key of theirs (what they created keeps their name)."""
    output.client().users.delete(name)
    console.print(f"Deleted user {escape(name)} and their keys.")


app.command("delete", hidden=True)(remove)  # the same as rm, for those who type delete


@handled
def login(
    url: Annotated[str, typer.Argument(help="The server, e.g. http://team-box:8765.")],
    user: Annotated[
        str | None, typer.Option("--user", "-u", help="Your user name (asked for if left out).")
    ] = None,
    password_stdin: PasswordStdin = False,
    expires_in_days: Annotated[
        float, typer.Option(min=0.01, max=3650, help="The key's lifetime in days.")
    ] = 90,
    read_only: Annotated[bool, typer.Option(help="A key that only reads.")] = False,
) -> None:
    """Sign in to a server: trade your password for a key, stored in the credentials file
    (owner-only) as this server's, and make it the default for the SDK and CLI."""
    import socket

    from naiad.sdk import credentials
    from naiad.sdk.users import login as sign_in

    if user is None:
        if password_stdin or not sys.stdin.isatty():
            output.fail("Give your user name with --user.")
        user = typer.prompt("User name")
    password = read_password(password_stdin)
    issued = sign_in(
        url,
        user,
        password,
        description=f"naiad login on {socket.gethostname()}"[:200],
        expires_in_days=expires_in_days,
        read_only=read_only,
    )
    where = credentials.save(url, issued.user, issued.token)
    until = f" until {output.iso_time(issued.expires_at)}" if issued.expires_at else ""
    console.print(
        f"Signed in to {escape(url)} as {escape(issued.user)} ({issued.role}); the key "
        f"{issued.access_key_id} is valid{until}, stored in {where}."
    )


@handled
def logout(
    url: Annotated[
        str | None, typer.Argument(help="The server (default: the one you last signed in to).")
    ] = None,
) -> None:
    """Revoke this machine's key for a server and forget it."""
    from naiad.core.errors import NaiadError
    from naiad.sdk import credentials
    from naiad.sdk.client import Client

    url = url or credentials.default_url()
    found = credentials.entry(url) if url else None
    if url is None or found is None:
        output.fail("Not signed in to " + (url or "any server") + "; nothing to do.")
    token = found.get("token", "")
    key_id = token.removeprefix("naiad_")[:20]
    try:
        with Client(url=url, token=token) as client:
            client.keys.delete(key_id)
    except NaiadError as exc:  # expired or revoked already: forgetting it is what is left
        console.print(f"The server did not revoke the key ({exc}); forgetting it here.")
    credentials.forget(url)
    console.print(f"Signed out of {escape(url)}.")


@handled
def whoami(as_json: JsonOption = False) -> None:
    """Whom your key acts for on the configured server, and its role."""
    client = output.client()
    me = client.users.me()
    if as_json:
        output.print_json(me)
        return
    what = "the admin token" if not me.user else f"user {escape(me.name)}"
    note = ", read-only key" if me.read_only else ""
    console.print(f"{escape(client.url)}: {what}, role {me.role}{note}.")
