"""`naiad runs ...`: list, inspect, compare, export, delete; sync spooled metrics; artifacts."""

import math
import os
import re
import sys
from collections import Counter
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from naiad.cli import output
from naiad.cli.output import console, err_console, handled
from naiad.core.errors import NotFound, ServerError, ServerUnreachable
from naiad.core.home import HomeLayout, default_home
from naiad.schemas.artifacts import Artifact
from naiad.schemas.runs import Run
from naiad.sdk import spool

if TYPE_CHECKING:
    from naiad.sdk.client import Client

app = typer.Typer(
    name="runs",
    help="List, inspect, compare, export and delete tracked runs; sync metrics left on disk.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
RunIdArg = Annotated[
    str, typer.Argument(help="Run id: the full id, or a unique prefix as `runs ls` shows.")
]

SHORT_ID = 8
FULL_ID = 32
MIN_PREFIX = 4
MAX_PARAM_COLUMNS = 3
MAX_METRIC_COLUMNS = 4
_FIELD = re.compile(r"\b(metrics?|params?)\.(`[^`]+`|[\w\-./:]+)")


# -- run lookup ------------------------------------------------------------------------------
def find_run(client: "Client", run_id: str) -> Run:
    """The run with this id, or the only run whose id starts with it."""
    try:
        return client.runs.get(run_id)
    except NotFound:
        prefix = run_id.lower()
        if not (MIN_PREFIX <= len(prefix) < FULL_ID and re.fullmatch(r"[0-9a-f]+", prefix)):
            raise
        matches = [run for run in _all_runs(client) if run.id.startswith(prefix)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            output.fail(
                f"Run id {run_id!r} is the start of {len(matches)} runs' ids; give more of it."
            )
        raise


def _all_runs(client: "Client", page: int = 1000) -> list[Run]:
    found: list[Run] = []
    while True:
        runs, total = client.runs.search(limit=page, offset=len(found))
        found += runs
        if not runs or len(found) >= total:
            return found


# -- ls --------------------------------------------------------------------------------------
def _referenced(texts: list[str]) -> dict[str, list[str]]:
    """Keys named in a filter or order-by, by kind: they earn a column first."""
    wanted: dict[str, list[str]] = {"params": [], "metrics": []}
    for text in texts:
        for kind, key in _FIELD.findall(text):
            kind = kind if kind.endswith("s") else f"{kind}s"
            wanted[kind].append(key.strip("`"))
    return wanted


def _pick_columns(runs: list[Run], kind: str, wanted: list[str], limit: int) -> list[str]:
    """The keys worth a column: named in the query, then differing across runs, then common."""
    counts = Counter(k for run in runs for k in getattr(run, kind))
    differing = {k for k in counts if len({repr(getattr(run, kind).get(k)) for run in runs}) > 1}
    named = [k for k in dict.fromkeys(wanted) if k in counts]
    rest = sorted(
        (k for k in counts if k not in named), key=lambda k: (k not in differing, -counts[k], k)
    )
    return (named + rest)[:limit]


@app.command("ls")
@handled
def list_runs(
    experiment: Annotated[
        str | None, typer.Option("--experiment", "-e", help="Only runs of this experiment.")
    ] = None,
    filter: Annotated[
        str | None,
        typer.Option(
            "--filter",
            "-f",
            help="Search expression, e.g. \"metrics.acc > 0.9 and params.optimizer = 'adam'\".",
        ),
    ] = None,
    order_by: Annotated[
        list[str] | None,
        typer.Option(
            "--order-by",
            help='Sort key, e.g. "metrics.acc DESC"; repeat for ties. Default: newest first.',
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=1000, help="Show at most this many runs.")
    ] = 50,
    created_by: output.CreatedBy = None,
    as_json: JsonOption = False,
) -> None:
    """List runs, newest first, with their key params and latest metrics."""
    with output.client() as client:
        runs, total = client.runs.search(
            experiment, filter, order_by or None, limit, created_by=created_by
        )
    if as_json:
        output.print_json(runs)
        return
    if not runs:
        console.print("No runs match." if filter or experiment or created_by else "No runs yet.")
        return
    wanted = _referenced([filter or "", *(order_by or [])])
    params = _pick_columns(runs, "params", wanted["params"], MAX_PARAM_COLUMNS)
    metrics = _pick_columns(runs, "metrics", wanted["metrics"], MAX_METRIC_COLUMNS)
    hidden = 0
    while True:  # drop the least wanted extra columns until the table fits the screen
        table = _runs_table(runs, params, metrics, show_experiment=experiment is None)
        if _natural_width(table) <= console.width or not (params or metrics):
            break
        if params and len(params) >= len(metrics):  # metrics are what people scan for
            params = params[:-1]
        else:
            metrics = metrics[:-1]
        hidden += 1
    console.print(table)
    notes = []
    if total > len(runs):
        notes.append(f"{len(runs)} of {total} runs; use --limit to see more")
    if hidden:
        notes.append(
            f"{hidden} param/metric column(s) hidden to fit; widen the terminal or use --json"
        )
    if notes:
        console.print(f"[dim]{escape('; '.join(notes))}.[/]")


def _natural_width(table: Table) -> int:
    """How wide the table wants to be, before Rich squeezes it into the screen."""
    return console.measure(table, options=console.options.update_width(10_000)).maximum


def _runs_table(
    runs: list[Run], params: list[str], metrics: list[str], show_experiment: bool
) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("id", no_wrap=True, style="dim")
    table.add_column("name", no_wrap=True, max_width=32)
    if show_experiment:
        table.add_column("experiment", no_wrap=True, max_width=24)
    table.add_column("status", no_wrap=True)
    table.add_column("started", no_wrap=True)
    table.add_column("duration", no_wrap=True, justify="right")
    for key in params:
        header = f"params.{key}" if key in metrics else key
        table.add_column(header, header_style="bold cyan", max_width=20, no_wrap=True)
    for key in metrics:
        header = f"metrics.{key}" if key in params else key
        table.add_column(header, header_style="bold magenta", justify="right", no_wrap=True)
    for run in runs:
        table.add_row(
            run.id[:SHORT_ID],
            Text(run.name),
            *([Text(run.experiment)] if show_experiment else []),
            output.status_text(run.status),
            output.relative_time(run.start_time),
            output.run_duration(run.start_time, run.end_time, run.status == "Running"),
            *(Text(_param(run, k)) for k in params),
            *(_metric(run, k) for k in metrics),
        )
    return table


def _param(run: Run, key: str) -> str:
    """A param in a list cell: floats kept short (``show`` and ``compare`` give them whole)."""
    if key not in run.params:
        return output.NONE
    value = run.params[key]
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.6g}"
    return output.param_value(value)


def _metric(run: Run, key: str) -> str:
    summary = run.metrics.get(key)
    return output.metric_value(summary.value if summary else None)


# -- show ------------------------------------------------------------------------------------
@app.command("show")
@handled
def show_run(run_id: RunIdArg, as_json: JsonOption = False) -> None:
    """Show one run: status, times, params, tags, metrics and artifacts."""
    artifacts_error = None
    with output.client() as client:
        run = find_run(client, run_id)
        try:
            artifacts = client.runs.list_artifacts(run.id, recursive=True)
        except ServerError as exc:  # the run itself is there: still show it
            artifacts, artifacts_error = [], exc.message
    if as_json:
        output.print_json({**output.to_jsonable(run), "artifacts": artifacts})
        return
    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold")
    summary.add_column()
    status = output.status_text(run.status)
    if run.status_reason:
        status.append(f"  {run.status_reason}", style="")
    rows: list[tuple[str, Any]] = [
        ("id", run.id),
        ("experiment", Text(run.experiment)),
        ("status", status),
        ("started", f"{output.iso_time(run.start_time)} ({output.relative_time(run.start_time)})"),
        ("ended", output.iso_time(run.end_time)),
        ("duration", output.run_duration(run.start_time, run.end_time, run.status == "Running")),
        ("artifact uri", Text(run.artifact_uri)),
    ]
    for label, value in rows:
        summary.add_row(label, value)
    console.print(Text(f"Run {run.name}", style="bold"))
    console.print(summary)
    _print_pairs("Params", {k: output.param_value(v) for k, v in sorted(run.params.items())})
    _print_pairs("Tags", dict(sorted(run.tags.items())))
    if run.metrics:
        table = _table("Metrics")
        table.add_column("key", no_wrap=True)
        for name in ("last", "min", "max", "count", "step"):
            table.add_column(name, justify="right", no_wrap=True)
        for key, m in sorted(run.metrics.items()):
            table.add_row(
                Text(key),
                output.metric_value(m.value),
                output.metric_value(m.min),
                output.metric_value(m.max),
                f"{m.count:,}",
                str(m.step),
            )
        _print_section(table)
    if artifacts_error:
        console.print(f"\n[yellow]Artifacts could not be listed: {escape(artifacts_error)}[/]")
    elif artifacts:
        _print_section(_artifact_table(artifacts, title="Artifacts"))


def _print_section(table: Table) -> None:
    console.print()
    console.print(table)


def _table(title: str) -> Table:
    return Table(
        title=title, title_justify="left", title_style="bold", header_style="bold", min_width=30
    )


def _print_pairs(title: str, pairs: dict[str, str]) -> None:
    if not pairs:
        return
    table = _table(title)
    table.add_column("key", no_wrap=True)
    table.add_column("value", overflow="fold", max_width=80)
    for key, value in pairs.items():
        table.add_row(Text(key), Text(value))
    _print_section(table)


def _artifact_table(artifacts: list[Artifact], title: str | None = None) -> Table:
    table = _table(title) if title else Table(header_style="bold", box=None, pad_edge=False)
    table.add_column("path", overflow="fold")
    table.add_column("size", justify="right", no_wrap=True)
    for a in artifacts:
        path = Text(f"{a.path}/", style="bold blue") if a.is_dir else Text(a.path)
        table.add_row(path, "" if a.is_dir else output.size(a.size))
    return table


# -- compare ---------------------------------------------------------------------------------
@app.command("compare")
@handled
def compare_runs(
    run_ids: Annotated[list[str], typer.Argument(help="Two or more run ids (or unique prefixes).")],
    as_json: JsonOption = False,
) -> None:
    """Compare runs side by side: params (differences highlighted), then latest metrics."""
    if len(run_ids) < 2:
        output.fail("Give at least two run ids to compare.")
    with output.client() as client:
        try:
            comparison = client.runs.compare(run_ids)
        except NotFound:  # maybe short ids: resolve each, then ask again
            comparison = client.runs.compare([find_run(client, r).id for r in run_ids])
    if as_json:
        output.print_json(comparison)
        return
    differing = set(comparison.differing_params)
    table = Table(header_style="bold")
    table.add_column("", no_wrap=True)
    for run in comparison.runs:
        table.add_column(
            f"{run.name}\n{run.id[:SHORT_ID]}", justify="right", overflow="fold", max_width=32
        )
    if comparison.params:
        table.add_row(Text("params", style="bold cyan"))
        for key, values in comparison.params.items():
            differs = key in differing
            style = "bold yellow" if differs else ""
            label = Text(f"{'* ' if differs else '  '}{key}", style=style)
            cells = [
                Text(output.param_value(v) if key in run.params else output.NONE, style=style)
                for run, v in zip(comparison.runs, values, strict=True)
            ]
            table.add_row(label, *cells)
    if comparison.metrics:
        table.add_section()
        table.add_row(Text("metrics (latest)", style="bold magenta"))
        for key, values in comparison.metrics.items():
            table.add_row(Text(f"  {key}"), *(output.metric_value(v) for v in values))
    console.print(table)
    if differing:
        console.print(f"[dim]* {len(differing)} param(s) differ between these runs.[/]")
    else:
        console.print("[dim]All params are the same.[/]")


# -- export ----------------------------------------------------------------------------------
class ExportFormat(StrEnum):
    csv = "csv"
    parquet = "parquet"


@app.command("export")
@handled
def export_run(
    run_id: RunIdArg,
    format: Annotated[
        ExportFormat | None,
        typer.Option(
            "--format",
            "-f",
            help="File format (default: from the -o suffix, else csv).",
            case_sensitive=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="File to write (default: <run id>.<format>)."),
    ] = None,
) -> None:
    """Write every point of every metric (key, step, timestamp, value) to CSV or Parquet."""
    if format is None:
        suffix = out.suffix.lstrip(".").lower() if out else ""
        format = ExportFormat(suffix) if suffix in ExportFormat.__members__ else ExportFormat.csv
    with output.client() as client:
        run = find_run(client, run_id)
        path = out or Path(f"{run.id}.{format.value}")
        with err_console.status(f"Exporting run {run.name}..."):
            client.runs.export(run.id, path, format.value)
    points = _count_rows(path, format)
    console.print(
        f"Wrote {points:,} points of {len(run.metrics)} metric(s) of run "
        f"{escape(run.name)} to {escape(str(path))}."
    )


def _count_rows(path: Path, format: ExportFormat) -> int:
    if format is ExportFormat.parquet:
        import pyarrow.parquet as pq

        return pq.read_metadata(path).num_rows
    with open(path, "rb") as f:
        return max(0, sum(1 for _ in f) - 1)  # less the header


# -- sync ------------------------------------------------------------------------------------
@app.command("sync")
@handled
def sync_runs(
    drop_refused: Annotated[
        bool,
        typer.Option(
            "--drop-refused",
            help="Delete batches the server refuses for good (e.g. the run has ended or "
            "was deleted) instead of keeping them.",
        ),
    ] = False,
) -> None:
    """Send the metric batches that runs left on disk while the server was away."""
    root = HomeLayout(default_home()).spool
    pending = spool.waiting(root)
    total = sum(len(files) for files in pending.values())
    if not total and not pending:
        console.print(f"Nothing to sync: no metric batches are waiting in {escape(str(root))}.")
        return
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    with output.client() as client, progress:
        task = progress.add_task("Sending batches", total=total)
        try:
            outcomes = spool.replay(
                client.runs, root, drop_refused, lambda n: progress.advance(task, n), pending
            )
        except ServerUnreachable as exc:
            left = sum(len(files) for files in spool.waiting(root).values())
            output.fail(f"{exc.message} {left} batch(es) are still waiting in {root}.")
    sent = sum(o.sent for o in outcomes.values())
    duplicates = sum(o.duplicates for o in outcomes.values())
    points = sum(o.points for o in outcomes.values())
    runs = sum(1 for o in outcomes.values() if o.sent or o.duplicates)
    already = f"; {duplicates} were already on the server" if duplicates else ""
    console.print(f"Sent {sent} batch(es) ({points:,} points) for {runs} run(s){already}.")
    for run_id, o in outcomes.items():
        if o.problem:
            fate = f"{o.dropped} batch(es) dropped" if o.dropped else f"{o.kept} batch(es) kept"
            err_console.print(
                f"[yellow]Run {run_id}: {escape(o.problem)} ({fate})[/]", soft_wrap=True
            )
    kept = sum(o.kept for o in outcomes.values())
    if kept:
        output.fail(
            f"{kept} batch(es) could not be sent and stay in {root}; fix the cause above and "
            "run `naiad runs sync` again, or pass --drop-refused to discard refused ones."
        )


# -- delete ----------------------------------------------------------------------------------
@app.command("delete")
@handled
def delete_run(
    run_id: RunIdArg,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Delete without asking for confirmation.")
    ] = False,
) -> None:
    """Delete a run with its metrics, artifacts and finished training job, for good."""
    with output.client() as client:
        run = find_run(client, run_id)
        job = run.tags.get("naiad.job")
        owned = "its metrics and artifacts" + (f", and training job {job!r}" if job else "")
        if not yes:
            if not sys.stdin.isatty():
                output.fail(
                    f"Deleting run {run.name!r} ({run.id}) needs confirmation; pass --yes to "
                    "delete without asking."
                )
            question = (
                f"Delete run {run.name!r} ({run.id[:SHORT_ID]}) of {run.experiment!r} with {owned}?"
            )
            if not typer.confirm(question):
                output.fail("Nothing deleted.")
        client.runs.delete(run.id)
    console.print(f"Deleted run [bold]{escape(run.name)}[/] ({run.id}) with {escape(owned)}.")


# -- artifacts -------------------------------------------------------------------------------
@app.command("artifacts")
@handled
def list_artifacts(
    run_id: RunIdArg,
    path: Annotated[str, typer.Argument(help="Directory inside the run's artifacts.")] = "",
    recursive: Annotated[
        bool, typer.Option("--recursive", "-r", help="List files in subdirectories too.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """List a run's artifacts (files and directories) with their sizes."""
    with output.client() as client:
        run = find_run(client, run_id)
        artifacts = client.runs.list_artifacts(run.id, path, recursive=recursive)
    if as_json:
        output.print_json(artifacts)
        return
    if not artifacts:
        under = f" under {path!r}" if path else ""
        console.print(f"Run {escape(run.name)} has no artifacts{escape(under)}.")
        return
    console.print(_artifact_table(artifacts))


@app.command("download")
@handled
def download_artifact(
    run_id: RunIdArg,
    path: Annotated[str, typer.Argument(help="Artifact file or directory to download.")],
    dest: Annotated[
        str | None,
        typer.Option(
            "--output",
            "-o",
            help="Where to write: a file, or a directory (existing, or ending in /); "
            "default: its name in the current directory.",
        ),
    ] = None,
) -> None:
    """Download one artifact file, or every file under an artifact directory."""
    with output.client() as client:
        run = find_run(client, run_id)
        listing = client.runs.list_artifacts(run.id, path, recursive=True)
        files = [a for a in listing if not a.is_dir]
        if dest is None:
            where = Path(PurePosixPath(path).name) if files else Path(".")
        else:
            where = Path(dest)
            if dest.endswith(("/", os.sep)) and not files:
                where.mkdir(parents=True, exist_ok=True)  # a file into this directory
        try:
            with err_console.status(f"Downloading {path}..."):
                target = client.runs.download_artifact(run.id, path, where)
        except NotFound:
            output.fail(
                f"Run {run.id} has no artifact {path!r}; list them with "
                f"`naiad runs artifacts {run.id[:SHORT_ID]} -r`."
            )
    count = len(files) or 1
    nbytes = sum(a.size or 0 for a in files) if files else target.stat().st_size
    console.print(f"Downloaded {count} file(s) ({output.size(nbytes)}) to {escape(str(target))}.")
