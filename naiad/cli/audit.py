"""`naiad audit`: the writes made to the server, who made them, from where, and the answer."""

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from naiad.cli import output
from naiad.cli.output import console, handled


@handled
def audit(
    since: Annotated[
        str | None, typer.Option(help="Only the last this long, e.g. 1h or 7d (default: all).")
    ] = None,
    actor: Annotated[
        str | None, typer.Option(help="Only this actor: admin, console, job:NAME, key:ID.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The audit log, newest first: every write to the API, the console and the
    AWS-compatible APIs (reads, metric batches and invocations are not recorded)."""
    start = None
    if since is not None:
        start = datetime.now(UTC) - timedelta(seconds=output.parse_duration(since, "--since"))
    events = output.client().audit.list(since=start, actor=actor, limit=limit)
    if as_json:
        output.print_json(events)
        return
    if not events:
        console.print("No writes recorded" + (" in that time." if since else " yet."))
        return
    table = Table(title="audit log")
    for column in ("when", "actor", "action", "path", "status", "from"):
        table.add_column(column)
    for event in events:
        table.add_row(
            output.iso_time(event.at),
            escape(event.actor),
            escape(event.action),
            escape(event.path),
            str(event.status),
            escape(event.client) or output.NONE,
        )
    console.print(table)
