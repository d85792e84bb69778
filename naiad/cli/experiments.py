"""`naiad experiments ...`: list, create and delete experiments."""

import sys
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from naiad.cli import output
from naiad.cli.output import console, handled

app = typer.Typer(
    name="experiments", help="List, create and delete experiments.", no_args_is_help=True
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@app.command("ls")
@handled
def list_experiments(as_json: JsonOption = False) -> None:
    """List experiments with their run counts, newest first."""
    with output.client() as client:
        experiments = client.experiments.list()
    experiments.sort(key=lambda e: e.created_at, reverse=True)
    if as_json:
        output.print_json(experiments)
        return
    if not experiments:
        console.print("No experiments yet; create one with `naiad experiments create NAME`.")
        return
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("name", no_wrap=True)
    table.add_column("runs", justify="right")
    table.add_column("created", no_wrap=True)
    table.add_column("id", no_wrap=True, style="dim")
    table.add_column("description", overflow="fold", max_width=60)
    for e in experiments:
        table.add_row(
            Text(e.name, style="bold"),
            str(e.run_count),
            output.relative_time(e.created_at),
            e.id[:8],
            Text(e.description or ""),
        )
    console.print(table)


@app.command("create")
@handled
def create_experiment(
    name: Annotated[str, typer.Argument(help="Name of the new experiment (unique).")],
    description: Annotated[
        str, typer.Option("--description", "-d", help="What the experiment is about.")
    ] = "",
) -> None:
    """Create an empty experiment (runs also create theirs on first use)."""
    with output.client() as client:
        experiment = client.experiments.create(name, description)
    console.print(f"Created experiment [bold]{escape(experiment.name)}[/] ({experiment.id}).")


@app.command("delete")
@handled
def delete_experiment(
    name: Annotated[str, typer.Argument(help="Name (or id) of the experiment to delete.")],
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Delete without asking for confirmation.")
    ] = False,
) -> None:
    """Delete an experiment and every run in it."""
    with output.client() as client:
        experiment = client.experiments.get(name)
        if not yes:
            if not sys.stdin.isatty():
                output.fail(
                    f"Deleting experiment {experiment.name!r} needs confirmation; "
                    "pass --yes to delete without asking."
                )
            runs = f" and its {experiment.run_count} run(s)" if experiment.run_count else ""
            if not typer.confirm(f"Delete experiment {experiment.name!r}{runs}?"):
                output.fail("Nothing deleted.")
        client.experiments.delete(experiment.name)
    console.print(f"Deleted experiment [bold]{escape(experiment.name)}[/].")
