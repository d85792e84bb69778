"""`naiad train` and `naiad jobs`: submit a script, watch it live, read its logs, stop it."""

from __future__ import annotations

import enum
import json
import shlex
from collections import deque
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from naiad.cli import output
from naiad.cli.output import console, handled, parse_memory
from naiad.core.errors import InvalidInput
from naiad.core.status import Status

if TYPE_CHECKING:
    from naiad.schemas.jobs import TrainingJob
    from naiad.sdk.client import Client

app = typer.Typer(no_args_is_help=True, help="List, inspect, follow and stop training jobs.")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
NameArg = Annotated[str, typer.Argument(help="Job name.")]


def parse_pairs(pairs: list[str], what: str) -> dict[str, str]:
    """NAME=VALUE options (--hp, --input, --metric-definition) as a dict."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"{what} {pair!r} must look like NAME=VALUE.")
        out[key] = value
    return out


def parse_channel_options(pairs: list[str]) -> dict[str, dict[str, Any]]:
    """--channel NAME.OPTION=VALUE (repeat): a channel's options; a value starting with
    [ or { is JSON (a filter, a column list), else the text itself."""
    out: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        channel, dot, option = key.partition(".")
        if not eq or not dot or not channel or not option:
            raise InvalidInput(
                f"--channel {pair!r} must look like NAME.OPTION=VALUE, e.g. "
                "train.query='SELECT * FROM digits' or train.input_mode=FastFile."
            )
        parsed: Any = value
        if value[:1] in ("[", "{"):
            try:
                parsed = json.loads(value)
            except ValueError as exc:
                raise InvalidInput(
                    f"--channel {key}: {value!r} is not valid JSON ({exc})."
                ) from None
        out.setdefault(channel, {})[option] = parsed
    return out


def _metric_definitions(pairs: list[str]) -> list[dict[str, str]]:
    """--metric-definition NAME=REGEX, split at the first '=' (a regex may hold more)."""
    return [{"name": k, "regex": v} for k, v in parse_pairs(pairs, "--metric-definition").items()]


def _elapsed(job: TrainingJob) -> str:
    if job.started_at is None:
        return "-"
    end = job.ended_at or datetime.now(UTC)
    return output.duration((end - job.started_at).total_seconds())


class Framework(enum.StrEnum):
    """``--framework``'s choices (schemas.jobs.Framework)."""

    auto = "auto"
    pytorch = "pytorch"
    tensorflow = "tensorflow"


class LiveView:
    """Status, elapsed time, an epoch bar when the script reports epochs, metrics, log tail."""

    def __init__(self, client: Client, name: str, rank: int | None) -> None:
        self.client, self.name, self.rank = client, name, rank
        self.offset = 0
        self.tail: deque[str] = deque(maxlen=12)
        self.bar = Progress(
            TextColumn("epoch {task.completed:.0f}/{task.total:.0f}"),
            BarColumn(),
            TimeRemainingColumn(),
        )
        self.task: TaskID | None = None

    def poll(self) -> TrainingJob:
        job = self.client.training_jobs.get(self.name).job
        chunk = self.client.training_jobs.read_logs(self.name, self.offset, self.rank)
        self.offset = chunk.offset
        self.tail.extend(chunk.text.splitlines())
        return job

    def render(self, job: TrainingJob) -> Panel:
        head = Text.assemble(
            (f"{job.name}  ", "bold"),
            output.status_text(job.status),
            f"  elapsed {_elapsed(job)}  attempt {job.attempt}",
        )
        parts: list[RenderableType] = [head]
        if job.status_reason:
            parts.append(Text(job.status_reason, style="dim"))
        run = self.client.runs.get(job.run_id)
        epochs = job.hyperparameters.get("epochs")
        if isinstance(epochs, int) and epochs > 0 and "epoch" in run.metrics:
            done = float(run.metrics["epoch"].value) + 1
            if self.task is None:
                self.task = self.bar.add_task("", total=epochs)
            self.bar.update(self.task, completed=min(done, epochs))
            parts.append(self.bar)
        shown = [(k, m) for k, m in sorted(run.metrics.items()) if not k.startswith("system/")]
        if shown:
            table = Table(box=None, show_header=True, pad_edge=False)
            for column in ("metric", "last", "step"):
                table.add_column(column)
            for key, m in shown[:8]:
                table.add_row(key, output.metric_value(m.value), str(m.step))
            parts.append(table)
        parts.append(Text("\n".join(self.tail) or "(no output yet)", style="dim"))
        return Panel(Group(*parts), title="naiad job", border_style="cyan")


def follow(client: Client, name: str, rank: int | None = None) -> TrainingJob:
    """The live view until the job ends; Ctrl-C detaches and leaves the job running."""
    view = LiveView(client, name, rank)
    job = view.poll()
    with (
        output.ctrl_c_flag() as stop,
        Live(view.render(job), console=console, refresh_per_second=4) as live,
    ):
        while not Status(job.status).terminal and not stop.wait(0.5):
            job = view.poll()
            live.update(view.render(job))
    if stop.is_set():
        console.print(f"Detached; {name} keeps running. Follow it again: naiad jobs logs {name} -f")
        raise typer.Exit(0)
    return job


def train(
    entrypoint: Annotated[str, typer.Argument(help="Script to run, relative to --source.")],
    source: Annotated[Path, typer.Option(help="Directory snapshotted as the job's code.")] = Path(
        "."
    ),
    hp: Annotated[
        list[str] | None, typer.Option(help="Hyperparameter NAME=VALUE (repeat).")
    ] = None,
    input: Annotated[
        list[str] | None,
        typer.Option(
            help="Input channel NAME=PATH_OR_URI (repeat): a path, s3://, sql://CONNECTION "
            "or dynamodb://TABLE."
        ),
    ] = None,
    channel: Annotated[
        list[str] | None,
        typer.Option(
            help="A channel's option NAME.OPTION=VALUE (repeat), e.g. train.format=parquet, "
            "train.query='SELECT ...', train.filter='[[\"label\",\"<\",5]]', "
            "train.input_mode=FastFile (stream it), train.distribution=ShardedByS3Key."
        ),
    ] = None,
    procs: Annotated[int, typer.Option(help="Processes per node (torchrun).")] = 1,
    nodes: Annotated[
        str,
        typer.Option(
            help="Nodes: a count, or MIN:MAX for an elastic job that grows as room frees and "
            "carries on when nodes are lost (docs/jobs.md)."
        ),
    ] = "1",
    framework: Annotated[
        Framework,
        typer.Option(
            help="tensorflow: TF_CONFIG for MultiWorkerMirroredStrategy and Naiad's Keras "
            "callback; auto: tensorflow when the script imports tensorflow or keras."
        ),
    ] = Framework.auto,
    name: Annotated[str | None, typer.Option(help="Job name (default: script-timestamp).")] = None,
    experiment: Annotated[str, typer.Option(help="Experiment for the job's run.")] = "jobs",
    max_runtime: Annotated[int | None, typer.Option(help="Stop after this many seconds.")] = None,
    memory: Annotated[
        str | None,
        typer.Option(
            help="Memory limit per node, e.g. 512m or 4g (MiB when no unit); past it the "
            "job fails with OutOfMemory."
        ),
    ] = None,
    max_retries: Annotated[int, typer.Option(help="Retries after a failure.")] = 0,
    priority: Annotated[int, typer.Option(help="Higher runs first (-1000 to 1000).")] = 0,
    metric_definition: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME=REGEX (repeat): each log line the regex matches logs its one group's "
            "number as metric NAME, as SageMaker's MetricDefinitions."
        ),
    ] = None,
    follow_: Annotated[bool, typer.Option("--follow", "-f", help="Watch it live.")] = False,
) -> None:
    """Snapshot a source directory and run a script from it as a tracked training job.

    The snapshot leaves out what .naiadignore in the directory lists (gitignore syntax),
    and .git, __pycache__ and virtualenvs.
    """
    from naiad.schemas.jobs import node_range
    from naiad.sdk.jobs import typed_value
    from naiad.sdk.sources import plan_source

    with output.clean_errors():
        hyperparameters = {k: typed_value(v) for k, v in parse_pairs(hp or [], "--hp").items()}
        inputs = parse_pairs(input or [], "--input")
        channels = parse_channel_options(channel or [])
        definitions = _metric_definitions(metric_definition or [])
        memory_mb = None if memory is None else parse_memory(memory)
        node_range(nodes)  # a clear error before anything is packed
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        job_name = name or f"{Path(entrypoint).stem.replace('_', '-').lower()}-{stamp}"
        client = output.client()
        plan = plan_source(source)
        if (large := plan.warning()) is not None:
            output.warn(large)
        with output.transfer_progress("source") as progress:
            handle = client.training_jobs.create(
                name=job_name,
                entrypoint=entrypoint,
                source_dir=plan,
                hyperparameters=hyperparameters,
                inputs=inputs,
                experiment=experiment,
                processes_per_node=procs,
                nodes=nodes,
                framework=framework.value,
                max_runtime_s=max_runtime,
                max_retries=max_retries,
                priority=priority,
                metric_definitions=definitions,
                progress=progress,
                channels=channels or None,
                memory_mb=memory_mb,
            )
        console.print(f"Submitted [bold]{escape(handle.name)}[/] (run {handle.job.run_id}).")
        if follow_:
            job = follow(client, handle.name)
            if job.status != "Completed":
                output.fail(f"Job {job.name} {job.status.lower()}: {job.status_reason}")


@app.command("ls")
@handled
def list_jobs(
    status: Annotated[str | None, typer.Option(help="Only jobs with this status.")] = None,
    created_by: output.CreatedBy = None,
    as_json: JsonOption = False,
) -> None:
    """Training jobs, newest first."""
    jobs = output.client().training_jobs.list(status, created_by=created_by)
    if as_json:
        output.print_json(jobs)
        return
    table = Table(title="training jobs")
    for column in ("name", "status", "procs", "attempt", "created", "by", "elapsed", "reason"):
        table.add_column(column)
    for job in jobs:
        table.add_row(
            job.name,
            output.status_text(job.status),
            f"{_nodes(job)}x{job.processes_per_node}",
            str(job.attempt),
            output.relative_time(job.created_at),
            escape(job.created_by or output.NONE),
            _elapsed(job),
            escape((job.status_reason or "")[:60]),
        )
    console.print(table)


@app.command("show")
@handled
def show_job(name: NameArg, as_json: JsonOption = False) -> None:
    """One job: its request, status, and timeline of transitions."""
    job = output.client().training_jobs.get(name).job
    if as_json:
        output.print_json(job)
        return
    console.print(Text.assemble((f"{job.name}  ", "bold"), output.status_text(job.status)))
    if job.status_reason:
        console.print(job.status_reason)
    facts = Table(box=None, show_header=False)
    for key, value in (
        ("command", shlex.join(job.command)) if job.command else ("entrypoint", job.entrypoint),
        ("resources", f"{_nodes(job)} node(s) x {job.processes_per_node} process(es)"),
        ("framework", job.framework),
        ("run", job.run_id),
        ("experiment", job.experiment),
        ("attempt", f"{job.attempt} (max retries {job.max_retries})"),
        ("elapsed", _elapsed(job)),
        ("output", job.output_uri),
        ("hyperparameters", ", ".join(f"{k}={v}" for k, v in job.hyperparameters.items())),
        ("inputs", ", ".join(f"{k}={v}" for k, v in job.inputs.items())),
        ("metrics from log", ", ".join(f"{d.name}={d.regex}" for d in job.metric_definitions)),
        ("environment", ", ".join(f"{k}={v}" for k, v in job.environment.items())),
        ("checkpoints", job.checkpoint_uri or f"jobs/{job.name}/checkpoints"),
    ):
        facts.add_row(key, escape(str(value)))
    console.print(facts)
    timeline = Table(title="timeline")
    for column in ("time", "status", "reason"):
        timeline.add_column(column)
    for t in job.transitions:
        timeline.add_row(
            output.iso_time(t.at), output.status_text(t.status), escape(t.reason or "")
        )
    console.print(timeline)
    if job.events:
        resizes = Table(title="resizes")
        for column in ("time", "workers", "step", "why"):
            resizes.add_column(column)
        for e in job.events:
            step = "" if e.step is None else str(e.step)
            workers = f"{e.from_workers} -> {e.to_workers}"
            resizes.add_row(output.iso_time(e.at), workers, step, escape(e.reason))
        console.print(resizes)


def _nodes(job: TrainingJob) -> str:
    """``2``, or an elastic job's ``1:4``."""
    return f"{job.nodes}:{job.max_nodes}" if job.max_nodes is not None else str(job.nodes)


@app.command("logs")
@handled
def job_logs(
    name: NameArg,
    follow_: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing.")] = False,
    rank: Annotated[int | None, typer.Option(help="Only this rank's lines.")] = None,
) -> None:
    """Print a job's logs (every rank, prefixed \\[rankN]); -f follows until it ends."""
    handle = output.client().training_jobs.get(name)
    for text in handle.logs(follow=follow_, rank=rank):
        console.out(text, end="", highlight=False)


@app.command("stop")
@handled
def stop_job(name: NameArg) -> None:
    """Stop a job: SIGTERM to all its processes, SIGKILL after a grace period."""
    job = output.client().training_jobs.stop(name).job
    console.print(f"{job.name}: {job.status} (stop requested).")


@app.command("rerun")
@handled
def rerun_job(
    name: NameArg,
    new_name: Annotated[
        str | None, typer.Option("--name", help="The new job's name (default NAME-rN).")
    ] = None,
) -> None:
    """Run a job again with the same request: a retry of one that failed or was stopped."""
    job = output.client().training_jobs.rerun(name, new_name).job
    console.print(f"Queued {job.name}, a rerun of {name}: `naiad jobs logs {job.name} -f`.")
