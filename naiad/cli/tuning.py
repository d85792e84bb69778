"""`naiad tune` and `naiad tuning`: start a hyperparameter search, watch its trials live,
stop it, and register its best trial's model."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from naiad.cli import output
from naiad.cli.jobs import parse_channel_options, parse_pairs
from naiad.cli.output import console, handled
from naiad.core.errors import InvalidInput
from naiad.core.status import Status

if TYPE_CHECKING:
    from naiad.schemas.tuning import ParameterRange, Trial, TuningJob
    from naiad.sdk.client import Client

app = typer.Typer(
    no_args_is_help=True,
    help="List, inspect, follow and stop tuning jobs; register their best trial's model.",
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
NameArg = Annotated[str, typer.Argument(help="Tuning job name.")]
LIVE_ROWS = 20  # trials the live view shows; `naiad tuning trials` lists them all
OUTCOME_STYLES = {
    "complete": "green",
    "pruned": "yellow",
    "failed": "red",
    "stopped": "yellow",
    "running": "blue",
}


# -- reading what was typed ---------------------------------------------------------------
def _space(spec: dict[str, Any], typed: list[str]) -> list[ParameterRange]:
    """The spec file's ranges, then --space ones (which win, by name)."""
    from naiad.sdk.tuning import parse_space

    ranges = {r.name: r for r in parse_space(spec.get("space") or [], "space")}
    ranges.update({r.name: r for r in parse_space(typed, "--space")})
    if not ranges:
        raise InvalidInput(
            "Give the search space: --space NAME=SPEC (repeat), e.g. --space lr=log:1e-4:1e-1 "
            "--space layers=int:1:4 --space act=cat:relu,gelu."
        )
    return list(ranges.values())


# -- showing a tuning job ----------------------------------------------------------------
def _elapsed(job: TuningJob) -> str:
    end = job.ended_at or datetime.now(UTC)
    return output.duration((end - job.created_at).total_seconds())


def _objective(job: TuningJob) -> str:
    way = "max" if job.objective.direction == "maximize" else "min"
    return f"{job.objective.metric} ({way})"


def _params(trial: Trial) -> str:
    return ", ".join(f"{k}={output.param_value(_short(v))}" for k, v in trial.params.items())


def _short(value: Any) -> Any:
    return f"{value:.4g}" if isinstance(value, float) else value


def outcome_text(trial: Trial) -> Text:
    """How a trial stands: its job's status while it runs, then how it ended."""
    if trial.outcome == "running" and trial.status not in (None, "Running"):
        return output.status_text(trial.status or "")
    return Text(trial.outcome, style=OUTCOME_STYLES.get(trial.outcome, ""))


def _one_line(text: str | None, limit: int) -> str:
    line = " ".join((text or "").split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def trials_table(
    job: TuningJob, trials: list[Trial], title: str = "trials", jobs: bool = False
) -> Table:
    """One row per trial, a column per hyperparameter; the best so far marked with *;
    ``jobs`` adds each trial's training job (for `naiad jobs logs`)."""
    best = job.best.number if job.best is not None else None
    table = Table(title=title)
    table.add_column("", width=1)
    table.add_column("#", justify="right")
    table.add_column("outcome")
    names = [r.name for r in job.space]
    for name in names:
        table.add_column(escape(name))
    table.add_column(escape(_objective(job)), justify="right")
    table.add_column("step", justify="right")
    if jobs:
        table.add_column("job")
    table.add_column("reason")
    for trial in trials:
        marked = trial.number == best
        table.add_row(
            "*" if marked else "",
            str(trial.number),
            outcome_text(trial),
            *(escape(output.param_value(_short(trial.params.get(n)))) for n in names),
            output.metric_value(trial.value),
            output.NONE if trial.last_step is None else str(trial.last_step),
            *([escape(trial.job or output.NONE)] if jobs else []),
            escape(_one_line(trial.reason, 60)),
            style="bold green" if marked else None,
        )
    return table


def _counts(job: TuningJob) -> str:
    c = job.counts
    parts = [f"{n} {what}" for what, n in c.model_dump().items() if n]
    return ", ".join(parts) or "no trials yet"


def _best_line(job: TuningJob) -> Text:
    if job.best is None:
        return Text("best: none completed yet", style="dim")
    b = job.best
    return Text.assemble(
        ("best: ", "bold"),
        (f"trial {b.number}  {job.objective.metric}={output.metric_value(b.value)}", "green"),
        f"  {_params(b)}",
    )


def _head(job: TuningJob) -> list[RenderableType]:
    parts: list[RenderableType] = [
        Text.assemble(
            (f"{job.name}  ", "bold"),
            output.status_text(job.status),
            f"  elapsed {_elapsed(job)}  {job.strategy}, early stopping {job.early_stopping}, "
            f"objective {_objective(job)}",
        )
    ]
    if job.status_reason:
        parts.append(Text(_one_line(job.status_reason, 300), style="dim"))
    parts.append(Text(f"trials: {_counts(job)} (budget {job.max_trials}, {job.parallel} at once)"))
    parts.append(_best_line(job))
    return parts


class LiveView:
    """The tuning job's head, a bar of trials ended out of the budget, and the trials."""

    def __init__(self, client: Client, name: str) -> None:
        self.client, self.name = client, name
        self.bar = Progress(
            TextColumn("trials {task.completed:.0f}/{task.total:.0f}"),
            BarColumn(),
            TimeElapsedColumn(),
        )
        self.task: TaskID | None = None

    def poll(self) -> tuple[TuningJob, list[Trial]]:
        tuning = self.client.tuning_jobs
        return tuning.get(self.name).job, tuning.trials(self.name)

    def render(self, job: TuningJob, trials: list[Trial]) -> Panel:
        from naiad.sdk.tuning import ended

        if self.task is None:
            self.task = self.bar.add_task("", total=job.max_trials)
        self.bar.update(self.task, completed=ended(job), total=job.max_trials)
        if Status(job.status).terminal:
            self.bar.stop_task(self.task)
        shown = trials[-LIVE_ROWS:]
        if job.best is not None and all(t.number != job.best.number for t in shown):
            shown = [job.best, *shown[1:]]
        table = trials_table(job, shown, title="")
        if len(trials) > len(shown):
            table.caption = (
                f"the latest {len(shown)} of {len(trials)} trials; all: naiad tuning trials "
                f"{job.name}"
            )
        parts = [*_head(job), self.bar, table]
        return Panel(Group(*parts), title="naiad tuning job", border_style="cyan")


def follow(client: Client, name: str) -> TuningJob:
    """The live view until the tuning job ends; Ctrl-C detaches and leaves it running."""
    view = LiveView(client, name)
    job, trials = view.poll()
    with (
        output.ctrl_c_flag() as stop,
        Live(view.render(job, trials), console=console, refresh_per_second=4) as live,
    ):
        while not Status(job.status).terminal and not stop.wait(1.0):
            job, trials = view.poll()
            live.update(view.render(job, trials))
    if not console.is_terminal:
        console.line()  # the view was printed once, as it ended, without a line break
    if stop.is_set():
        console.print(
            f"Detached; {name} keeps running. Follow it again: naiad tuning show {name} --follow"
        )
        raise typer.Exit(0)
    return job


def _ended(job: TuningJob) -> None:
    """The closing sentence: exit 1 when the search failed, else how to use its best."""
    reason = f": {job.status_reason}" if job.status_reason else "."
    if job.status == Status.FAILED.value:
        output.fail(f"Tuning job {job.name} failed{reason}")
    console.print(f"Tuning job {escape(job.name)} {job.status.lower()}{escape(reason)}")
    if job.best is not None:
        console.print(
            f"Register the best trial's model: naiad tuning register {job.name} --model NAME"
        )


# -- commands ------------------------------------------------------------------------------
def tune(
    script: Annotated[
        str | None, typer.Argument(help="Script each trial runs, relative to --source.")
    ] = None,
    source: Annotated[
        Path | None,
        typer.Option(help="Directory snapshotted as the trials' code (default: .)."),
    ] = None,
    space: Annotated[
        list[str] | None,
        typer.Option(
            help="A hyperparameter to search, NAME=SPEC (repeat): log:MIN:MAX (log-scaled, "
            "min > 0), float:MIN:MAX, int:MIN:MAX, logint:MIN:MAX, cat:A,B,C."
        ),
    ] = None,
    objective: Annotated[
        str | None,
        typer.Option(help="The metric the trials are judged by, and which way: METRIC:max|min."),
    ] = None,
    objective_regex: Annotated[
        str | None,
        typer.Option(help="Read the objective from lines of the trials' logs (one group)."),
    ] = None,
    trials: Annotated[
        int | None, typer.Option(help="Trials in all (default 10; grid: the grid's size).")
    ] = None,
    parallel: Annotated[int | None, typer.Option(help="Trials at once (default 1).")] = None,
    strategy: Annotated[
        str | None, typer.Option(help="tpe (default), random, grid or cmaes.")
    ] = None,
    prune: Annotated[
        str | None,
        typer.Option(help="Early stopping: none (default), median, asha or hyperband."),
    ] = None,
    hp: Annotated[
        list[str] | None, typer.Option(help="A fixed hyperparameter NAME=VALUE (repeat).")
    ] = None,
    input: Annotated[
        list[str] | None, typer.Option(help="Input channel NAME=PATH_OR_URI (repeat).")
    ] = None,
    channel: Annotated[
        list[str] | None,
        typer.Option(
            help="A channel's option NAME.OPTION=VALUE (repeat), as for naiad train: "
            "train.format=parquet, train.query='SELECT ...', train.input_mode=FastFile."
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(help="Tuning job name, 1-32 of a-z 0-9 - (default: script-xxxxxx)."),
    ] = None,
    experiment: Annotated[
        str | None, typer.Option(help="Experiment of the trials' runs (default: the name).")
    ] = None,
    procs: Annotated[int | None, typer.Option(help="Processes per node per trial.")] = None,
    nodes: Annotated[int | None, typer.Option(help="Nodes per trial.")] = None,
    max_runtime: Annotated[
        int | None, typer.Option(help="Stop the whole search after this many seconds.")
    ] = None,
    trial_max_runtime: Annotated[
        int | None, typer.Option(help="Stop a trial after this many seconds.")
    ] = None,
    max_failed: Annotated[
        int | None, typer.Option(help="Fail the search when this many trials failed (3).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="The strategy's random seed.")] = None,
    warm_start: Annotated[
        list[str] | None,
        typer.Option(help="An earlier tuning job whose trials seed the strategy (repeat)."),
    ] = None,
    metric_definition: Annotated[
        list[str] | None,
        typer.Option(help="NAME=REGEX (repeat): log lines the regex matches log metric NAME."),
    ] = None,
    spec: Annotated[
        Path | None,
        typer.Option(
            help="A spec file, YAML or JSON, with the tuning job's fields (name, space, "
            "objective, strategy, early_stopping, max_trials, parallel, ..., template) plus "
            "script and source (paths in it are relative to the file). Options given here "
            "win over it; --space, --hp and --input add to it."
        ),
    ] = None,
    follow_: Annotated[
        bool, typer.Option("--follow", "-f", help="Watch the trials live until it ends.")
    ] = False,
) -> None:
    """Search hyperparameters: run SCRIPT from a snapshot of --source as trials, each with
    the values the strategy picks from --space, judged by --objective.

    naiad tune train.py --space lr=log:1e-4:1e-1 --space act=cat:relu,gelu
    --objective val_acc:max --trials 20 --parallel 2 --prune asha --follow
    """
    from naiad.sdk.jobs import typed_value
    from naiad.sdk.sources import plan_source
    from naiad.sdk.tuning import default_name, parse_objective, read_spec

    with output.clean_errors():
        base = read_spec(spec) if spec is not None else {}
        script = script or base.get("script")
        if not script:
            raise InvalidInput(
                "Give the script each trial runs: naiad tune SCRIPT ... (or --spec)."
            )
        objective_given = objective or base.get("objective")
        if objective_given is None:
            raise InvalidInput("Give the objective: --objective METRIC:max or METRIC:min.")
        goal = parse_objective(
            objective_given, objective_regex, "--objective" if objective else "objective"
        )
        ranges = _space(base, space or [])
        hyperparameters = {k: typed_value(v) for k, v in parse_pairs(hp or [], "--hp").items()}
        definitions = parse_pairs(metric_definition or [], "--metric-definition")
        tuning_name = name or base.get("name") or default_name(str(script))
        client = output.client()
        plan = plan_source(source if source is not None else Path(base.get("source", ".")))
        if (large := plan.warning()) is not None:
            output.warn(large)

        def pick(typed: Any, key: str, default: Any) -> Any:
            return typed if typed is not None else base.get(key, default)

        with output.transfer_progress("source") as progress:
            handle = client.tuning_jobs.create(
                tuning_name,
                str(script),
                plan,
                space=ranges,
                objective=goal,
                strategy=pick(strategy, "strategy", "tpe"),
                early_stopping=pick(prune, "early_stopping", "none"),
                max_trials=pick(trials, "max_trials", None),
                parallel=pick(parallel, "parallel", 1),
                max_runtime_s=pick(max_runtime, "max_runtime_s", None),
                max_failed_trials=pick(max_failed, "max_failed_trials", 3),
                warm_start=pick(warm_start, "warm_start", []),
                seed=pick(seed, "seed", None),
                output_root=base.get("output_root"),
                hyperparameters=hyperparameters,
                inputs=parse_pairs(input or [], "--input"),
                channels=parse_channel_options(channel or []) or None,
                experiment=experiment,
                processes_per_node=procs,
                nodes=nodes,
                trial_max_runtime_s=trial_max_runtime,
                metric_definitions=definitions or None,
                template=base.get("template"),
                progress=progress,
            )
        job = handle.job
        console.print(
            f"Started tuning job [bold]{escape(job.name)}[/]: {job.max_trials} trials, "
            f"{job.parallel} at once, {job.strategy}, objective {escape(_objective(job))}."
        )
        if follow_:
            _ended(follow(client, job.name))
        else:
            console.print(f"Follow it: naiad tuning show {job.name} --follow")


@app.command("ls")
@handled
def list_tuning_jobs(
    status: Annotated[str | None, typer.Option(help="Only tuning jobs with this status.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Tuning jobs, newest first."""
    from naiad.sdk.tuning import ended

    jobs = output.client().tuning_jobs.list(status)
    if as_json:
        output.print_json(jobs)
        return
    table = Table(title="tuning jobs")
    for column in ("name", "status", "strategy", "trials", "objective", "best", "created"):
        table.add_column(column)
    for job in jobs:
        table.add_row(
            job.name,
            output.status_text(job.status),
            f"{job.strategy}/{job.early_stopping}",
            f"{ended(job)}/{job.max_trials}"
            + (f" ({job.counts.running} running)" if job.counts.running else ""),
            escape(_objective(job)),
            output.NONE
            if job.best is None
            else f"{output.metric_value(job.best.value)} (#{job.best.number})",
            output.relative_time(job.created_at),
        )
    console.print(table)


@app.command("show")
@handled
def show_tuning_job(
    name: NameArg,
    follow_: Annotated[
        bool, typer.Option("--follow", "-f", help="Watch the trials live until it ends.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """A tuning job: its search, counts, best trial and trials.

    --follow watches it live until it ends, and exits 1 if it failed. --json prints the
    tuning job (with --follow, once it has ended).
    """
    client = output.client()
    if as_json:
        handle = client.tuning_jobs.get(name)
        output.print_json(handle.wait() if follow_ else handle.job)
        return
    if follow_:
        _ended(follow(client, name))
        return
    job = client.tuning_jobs.get(name).job
    trials = client.tuning_jobs.trials(name)
    for part in _head(job):
        console.print(part)
    facts = Table(box=None, show_header=False)
    for key, value in (
        ("script", job.template.entrypoint or " ".join(job.template.command or [])),
        ("experiment", job.template.experiment),
        ("fixed hyperparameters", _pairs_text(job.template.hyperparameters)),
        ("inputs", _pairs_text(job.template.inputs)),
        ("max runtime", output.NONE if job.max_runtime_s is None else f"{job.max_runtime_s}s"),
        ("max failed trials", str(job.max_failed_trials)),
        ("warm start", ", ".join(job.warm_start) or output.NONE),
        ("seed", output.NONE if job.seed is None else str(job.seed)),
    ):
        facts.add_row(key, escape(str(value)))
    console.print(facts)
    ranges = Table(title="space")
    for column in ("name", "type", "range", "scaling"):
        ranges.add_column(column)
    for r in job.space:
        values = (
            ", ".join(output.param_value(v) for v in r.values or [])
            if r.type == "categorical"
            else f"{r.min:g} .. {r.max:g}"
        )
        ranges.add_row(escape(r.name), r.type, escape(values), r.scaling)
    console.print(ranges)
    console.print(trials_table(job, trials))


def _pairs_text(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={output.param_value(v)}" for k, v in values.items()) or output.NONE


@app.command("trials")
@handled
def list_trials(
    name: NameArg,
    sort: Annotated[
        str, typer.Option(help="number (the order they were asked for) or objective (best first).")
    ] = "number",
    as_json: JsonOption = False,
) -> None:
    """Every trial of a tuning job: outcome, hyperparameters, objective, reason."""
    client = output.client()
    trials = client.tuning_jobs.trials(name, sort)
    if as_json:
        output.print_json(trials)
        return
    job = client.tuning_jobs.get(name).job
    console.print(trials_table(job, trials, title=f"trials of {job.name}", jobs=True))


@app.command("importances")
@handled
def importances(name: NameArg, as_json: JsonOption = False) -> None:
    """Each hyperparameter's share of the objective's variance (after 3 completed trials)."""
    shares = output.client().tuning_jobs.importances(name)
    if as_json:
        output.print_json(shares)
        return
    if not shares:
        console.print("No importances yet: they need at least three completed trials.")
        return
    table = Table(title=f"importances in {name}")
    for column in ("hyperparameter", "share", ""):
        table.add_column(column)
    for key, share in sorted(shares.items(), key=lambda kv: -kv[1]):
        table.add_row(escape(key), f"{share:.1%}", "#" * round(share * 30))
    console.print(table)


@app.command("stop")
@handled
def stop_tuning_job(name: NameArg) -> None:
    """Stop a tuning job: no new trials, and the running ones are stopped."""
    job = output.client().tuning_jobs.stop(name).job
    if Status(job.status).terminal:
        console.print(f"{job.name} has already ended: {job.status}.")
    else:
        console.print(
            f"Stop requested for {job.name}: no new trials start, and the running ones are stopped."
        )


@app.command("register")
@handled
def register_best(
    name: NameArg,
    model: Annotated[str, typer.Option(help="The model to add a version to.")],
    trial: Annotated[
        int | None, typer.Option(help="This trial's model instead of the best one's.")
    ] = None,
    description: Annotated[str, typer.Option(help="A note kept with the version.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Register the model of a tuning job's best completed trial (or of --trial N)."""
    version = output.client().tuning_jobs.register(name, model, trial, description)
    if as_json:
        output.print_json(version)
        return
    lineage = version.lineage
    console.print(
        f"Registered [bold]{escape(version.name)}:{version.version}[/] from trial "
        f"{lineage.trial} of {escape(name)} (job {escape(lineage.job or '-')})."
    )
