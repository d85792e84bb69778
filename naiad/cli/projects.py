"""`naiad projects`: projects and their members. NAIAD_PROJECT picks the project the other
commands work in (where `naiad train` puts a job, which one `naiad runs ls` shows)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from naiad.cli import output
from naiad.cli.output import console, handled
from naiad.cli.users import RoleOption

app = typer.Typer(
    no_args_is_help=True, help="Projects and their members: create, list, members, remove."
)
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
NameArg = Annotated[str, typer.Argument(help="The project.")]


@app.command("ls")
@handled
def list_projects(as_json: JsonOption = False) -> None:
    """The projects you hold a role in (an admin sees all), with your role."""
    found = output.client().projects.list()
    if as_json:
        output.print_json(found)
        return
    table = Table(title="projects")
    for column in ("name", "your role", "description", "created by"):
        table.add_column(column)
    for p in found:
        by = escape(p.created_by or output.NONE)
        table.add_row(escape(p.name), p.role or output.NONE, escape(p.description), by)
    console.print(table)


@app.command("create")
@handled
def create(
    name: NameArg,
    description: Annotated[str, typer.Option("--description", "-d")] = "",
) -> None:
    """Create a project (admins); then give people roles with add-member."""
    output.client().projects.create(name, description)
    console.print(f"Created project {escape(name)}; work in it with NAIAD_PROJECT={escape(name)}.")


@app.command("rm")
@handled
def remove(name: NameArg) -> None:
    """Delete an empty project (admins)."""
    output.client().projects.delete(name)
    console.print(f"Deleted project {escape(name)}.")


@app.command("members")
@handled
def members(name: NameArg, as_json: JsonOption = False) -> None:
    """Who holds which role in the project (admins)."""
    found = output.client().projects.members(name)
    if as_json:
        output.print_json(found)
        return
    table = Table(title=f"members of {escape(name)}")
    table.add_column("user")
    table.add_column("role")
    for m in found:
        table.add_row(escape(m.user), m.role)
    console.print(table)


@app.command("add-member")
@handled
def add_member(
    name: NameArg,
    user: Annotated[str, typer.Argument(help="The user.")],
    role: Annotated[
        RoleOption, typer.Option(help="Their role in this project.")
    ] = RoleOption.viewer,
) -> None:
    """Give a user a role in a project (or change it)."""
    output.client().projects.set_member(name, user, role.value)
    console.print(f"{escape(user)} is now {role.value} in {escape(name)}.")


@app.command("remove-member")
@handled
def remove_member(name: NameArg, user: Annotated[str, typer.Argument(help="The user.")]) -> None:
    """Take a user's role in a project away."""
    output.client().projects.remove_member(name, user)
    console.print(f"{escape(user)} no longer has a role in {escape(name)}.")
