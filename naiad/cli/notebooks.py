"""`naiad notebooks`: managed JupyterLab servers, opened at the server's own URL.

Each one runs on the server's machine and opens at /notebooks/NAME/lab behind the
console's login; its kernels reach this server with no set-up (`naiad.start_run()`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from naiad.cli import output
from naiad.cli.output import console, handled

if TYPE_CHECKING:
    from naiad.schemas.notebooks import Notebook

app = typer.Typer(
    no_args_is_help=True,
    help="Notebook servers (JupyterLab): create, ls, show, stop, start, rm.",
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
WaitOption = Annotated[bool, typer.Option("--wait", help="Return once it has settled.")]


def _idle(seconds: int | None) -> str:
    return "never" if seconds is None else output.duration(seconds)


def _say(notebook: Notebook, url: str) -> None:
    line = f"Notebook {notebook.name}: {notebook.status}"
    if notebook.status == "InService":
        line += f"; open {url}{notebook.url}"
    elif notebook.status_reason:
        line += f" ({escape(notebook.status_reason)})"
    console.print(line)


@app.command("create")
@handled
def create(
    name: Annotated[str, typer.Argument(help="Letters, digits and '-', up to 63.")],
    source: Annotated[
        Path | None,
        typer.Option(help="A directory whose files become its working directory."),
    ] = None,
    requirements: Annotated[
        Path | None,
        typer.Option(help="A requirements.txt whose packages its kernels get (installed first)."),
    ] = None,
    idle_timeout: Annotated[
        int, typer.Option(help="Stop it after this many idle minutes (0: never).")
    ] = 60,
    description: Annotated[str, typer.Option("--description", "-d")] = "",
    wait: WaitOption = False,
    as_json: JsonOption = False,
) -> None:
    """Start a notebook server; a requirements.txt in --source gives its kernel packages."""
    client = output.client()
    with output.transfer_progress("source") as progress:
        notebook = client.notebooks.create(
            name,
            source_dir=source,
            requirements=requirements,
            idle_timeout_s=idle_timeout * 60 if idle_timeout > 0 else None,
            description=description,
            progress=progress,
        )
    if wait:
        with console.status(f"starting JupyterLab for {name}"):
            notebook = client.notebooks.wait(name)
    if as_json:
        output.print_json(notebook)
        return
    _say(notebook, client.url)
    if notebook.status == "Failed":
        raise typer.Exit(1)


@app.command("ls")
@handled
def list_notebooks(as_json: JsonOption = False) -> None:
    """Notebook servers, newest first."""
    found = output.client().notebooks.list()
    if as_json:
        output.print_json(found)
        return
    if not found:
        console.print("No notebooks; `naiad notebooks create NAME` starts one.")
        return
    table = Table(title="notebooks")
    for column in ("name", "status", "url", "last activity", "stops when idle", "reason"):
        table.add_column(column)
    for nb in found:
        table.add_row(
            nb.name,
            output.status_text(nb.status),
            nb.url if nb.status == "InService" else output.NONE,
            output.relative_time(nb.last_activity_at),
            _idle(nb.idle_timeout_s),
            escape((nb.status_reason or "")[:60]),
        )
    console.print(table)


@app.command("show")
@handled
def show(name: str, as_json: JsonOption = False) -> None:
    """One notebook server: status, URL, activity."""
    client = output.client()
    nb = client.notebooks.get(name)
    if as_json:
        output.print_json(nb)
        return
    for label, value in (
        ("name", nb.name),
        ("status", nb.status),
        ("reason", nb.status_reason),
        ("url", f"{client.url}{nb.url}"),
        ("started", output.iso_time(nb.started_at) if nb.started_at else None),
        ("last activity", output.relative_time(nb.last_activity_at)),
        ("stops when idle", _idle(nb.idle_timeout_s)),
        ("restarts", str(nb.restarts)),
        ("description", nb.description),
    ):
        if value:
            console.print(f"{label:<16} {escape(str(value))}")


@app.command("stop")
@handled
def stop(name: str, wait: WaitOption = False) -> None:
    """Stop it (its kernels end); its files stay for the next start."""
    client = output.client()
    _say(client.notebooks.stop(name, wait=wait), client.url)


@app.command("start")
@handled
def start(name: str, wait: WaitOption = False) -> None:
    """Start a stopped notebook again, on its files."""
    client = output.client()
    notebook = client.notebooks.start(name)
    if wait:
        with console.status(f"starting JupyterLab for {name}"):
            notebook = client.notebooks.wait(name)
    _say(notebook, client.url)
    if notebook.status == "Failed":
        raise typer.Exit(1)


@app.command("run")
@handled
def run(
    name: Annotated[str, typer.Argument(help="The notebook server.")],
    path: Annotated[str, typer.Argument(help="A .ipynb in its files, e.g. train.ipynb.")],
    hp: Annotated[
        list[str] | None, typer.Option(help="Hyperparameter NAME=VALUE (repeat).")
    ] = None,
    job_name: Annotated[str | None, typer.Option("--name", help="The job's name.")] = None,
    follow_: Annotated[bool, typer.Option("--follow", "-f", help="Watch it live.")] = False,
) -> None:
    """Run one of its notebooks as a training job, on a snapshot of its files."""
    from naiad.cli.jobs import follow, parse_pairs
    from naiad.sdk.jobs import typed_value

    client = output.client()
    with output.clean_errors():
        values = {k: typed_value(v) for k, v in parse_pairs(hp or [], "--hp").items()}
    handle = client.notebooks.run_as_job(name, path, values, job_name=job_name)
    console.print(f"Submitted [bold]{escape(handle.name)}[/] (run {handle.job.run_id}).")
    if follow_:
        job = follow(client, handle.name)
        if job.status != "Completed":
            output.fail(f"Job {job.name} {job.status.lower()}: {job.status_reason}")


@app.command("delete")
@handled
def remove(name: str, wait: WaitOption = False) -> None:
    """Stop it and delete it with its files."""
    output.client().notebooks.delete(name, wait=wait)
    console.print(f"Deleted notebook {name}{'' if wait else ' (its files go shortly)'}.")


app.command("rm", hidden=True)(remove)  # as `naiad keys rm` and `naiad connections rm` say it
