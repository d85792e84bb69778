"""`naiad models`: register versions, move aliases, evaluate, quantize, export, compare
evaluations."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from naiad.cli import output
from naiad.cli.output import console, handled
from naiad.core.errors import InvalidInput

if TYPE_CHECKING:
    from naiad.schemas.models import Evaluation, ModelVersion
    from naiad.sdk.client import Client

app = typer.Typer(
    no_args_is_help=True, help="Register, alias, evaluate, quantize and export models."
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
RefArg = Annotated[str, typer.Argument(help="NAME (latest), NAME:VERSION or NAME@ALIAS.")]
EvaluateOption = Annotated[
    bool, typer.Option("--evaluate/--no-evaluate", help="Evaluate it like the original.")
]


def _shape(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(d) for d in text.replace("x", ",").split(",") if d.strip()]
    except ValueError:
        raise InvalidInput(f"--input-shape {text!r} must be integers like -1,1,8,8.") from None


def _ref(v: ModelVersion) -> str:
    return f"{v.name}:{v.version}"


def _input(v: ModelVersion) -> str:
    """What the version takes; a SageMaker model has no signature (its handlers decide)."""
    return v.signature.inputs.describe() if v.signature is not None else "any"


@app.command("register")
@handled
def register(
    name: Annotated[str, typer.Argument(help="Model name; versions count up from 1.")],
    job: Annotated[str | None, typer.Option(help="A Completed training job's name.")] = None,
    path: Annotated[
        str | None, typer.Option(help="A model directory (naiad-model.json) or a .pt/.pt2 file.")
    ] = None,
    input_shape: Annotated[
        str | None,
        typer.Option(
            help="For a model saved without naiad-model.json (a lone .pt/.pt2 file, or a "
            "job's TorchScript file): e.g. -1,1,8,8 (-1: batch)."
        ),
    ] = None,
    dtype: Annotated[
        str | None, typer.Option(help="With --input-shape: the input dtype (float32 if unset).")
    ] = None,
    description: Annotated[str, typer.Option(help="A note kept with the version.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Register the next version of NAME from a job's model or a local model."""
    version = output.client().models.register(
        name,
        job=job,
        path=path,
        description=description,
        input_shape=_shape(input_shape),
        dtype=dtype,
    )
    if as_json:
        output.print_json(version)
        return
    origin = f"job {version.lineage.job}" if version.lineage.job else path
    facts = [version.format, _input(version), output.size(version.size_bytes)]
    console.print(
        f"Registered [bold]{_ref(version)}[/] from {escape(str(origin))} ({', '.join(facts)})."
    )


@app.command("ls")
@handled
def list_models(created_by: output.CreatedBy = None, as_json: JsonOption = False) -> None:
    """Registered models with their latest version and aliases."""
    models = output.client().models.list(created_by=created_by)
    if as_json:
        output.print_json(models)
        return
    table = Table(title="models")
    for column in ("name", "latest", "aliases", "created", "by"):
        table.add_column(column)
    for m in models:
        aliases = ", ".join(f"{a}->{v}" for a, v in sorted(m.aliases.items()))
        created = output.relative_time(m.created_at)
        by = escape(m.created_by or output.NONE)
        table.add_row(m.name, str(m.latest_version), aliases, created, by)
    console.print(table)


def evaluation_table(evaluations: list[Evaluation]) -> Table:
    table = Table(title="evaluations")
    keys = ("accuracy", "loss", "f1_macro", "precision_macro", "recall_macro")
    for column in ("version", "job", "status", "input", *keys):
        table.add_column(column)
    for e in evaluations:
        table.add_row(
            str(e.version),
            e.job,
            output.status_text(e.status),
            escape(e.input[-40:]),
            *(output.metric_value(e.metrics.get(k)) for k in keys),
        )
    return table


def matrix_table(e: Evaluation) -> Table:
    matrix = e.confusion_matrix or []
    table = Table(title=f"confusion matrix of {e.model}:{e.version} (rows: true class)")
    table.add_column("")
    classes = list(e.per_class or {}) or [str(i) for i in range(len(matrix))]
    for name in classes:
        table.add_column(name, justify="right")
    for i, (name, row) in enumerate(zip(classes, matrix, strict=False)):
        styles = ["bold green" if i == j else ("red" if v else "dim") for j, v in enumerate(row)]
        table.add_row(name, *(Text(str(v), style=st) for v, st in zip(row, styles, strict=True)))
    return table


@app.command("show")
@handled
def show(
    name: Annotated[str, typer.Argument(help="Model name, or NAME:VERSION for one version.")],
    matrix: Annotated[bool, typer.Option(help="Print each evaluation's confusion matrix.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Versions with their lineage, and every evaluation side by side."""
    client = output.client()
    base = name.split(":")[0].split("@")[0]
    versions = [client.models.get(name)] if base != name else client.models.versions(name)
    evaluations = [e for v in versions for e in client.evaluations.list(_ref(v))]
    if as_json:
        output.print_json({"versions": versions, "evaluations": evaluations})
        return
    table = Table(title=f"model {base}")
    for column in ("version", "aliases", "format", "input", "size", "source", "created"):
        table.add_column(column)
    for v in versions:
        source = (
            f"job {v.lineage.job}"
            if v.lineage.job
            else f"from {v.lineage.derived_from}"
            if v.lineage.derived_from
            else "upload"
        )
        if v.quantization:
            source += f" ({v.quantization})"
        table.add_row(
            str(v.version),
            ", ".join(v.aliases),
            v.format,
            _input(v),
            output.size(v.size_bytes),
            escape(source),
            output.relative_time(v.created_at),
        )
    console.print(table)
    if evaluations:
        console.print(evaluation_table(evaluations))
    if matrix:
        for e in evaluations:
            if e.confusion_matrix:
                console.print(matrix_table(e))


@app.command("alias")
@handled
def alias(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias_: Annotated[str, typer.Argument(metavar="ALIAS", help="e.g. production.")],
    version: Annotated[int, typer.Argument(help="The version it should point at.")],
) -> None:
    """Point ALIAS at VERSION (atomically; endpoints keep what they already serve)."""
    v = output.client().models.set_alias(name, alias_, version)
    console.print(f"{name}@{alias_} -> {_ref(v)}")


@app.command("evaluate")
@handled
def evaluate(
    ref: RefArg,
    input_: Annotated[
        str,
        typer.Option(
            "--input", help="CHANNEL=PATH_OR_URI of labelled data, e.g. test=./data/test."
        ),
    ],
    wait: Annotated[bool, typer.Option(help="Wait for the result and print it.")] = True,
    as_json: JsonOption = False,
) -> None:
    """Run an evaluation job of a version over labelled data (.npz with x/y, or .csv)."""
    channel, sep, location = input_.partition("=")
    if not sep:
        channel, location = "test", input_
    client = output.client()
    evaluation = client.evaluations.create(ref, location, channel)
    if wait:
        with console.status(f"evaluating {ref} (job {evaluation.job})"):
            evaluation = client.evaluations.wait(evaluation)
    if as_json:
        output.print_json(evaluation)
        return
    console.print(evaluation_table([evaluation]))
    if evaluation.confusion_matrix:
        console.print(matrix_table(evaluation))
    if evaluation.status == "Failed":
        output.fail(f"The evaluation failed; see `naiad jobs logs {evaluation.job}`.")


class Method(StrEnum):
    dynamic = "dynamic"
    static = "static"
    qat = "qat"


@app.command("quantize")
@handled
def quantize(
    ref: RefArg,
    method: Annotated[
        Method,
        typer.Option(
            help="dynamic: int8 Linear weights, no data; static: int8 weights and "
            "activations calibrated on --data; qat: fine-tuned on --data with fake "
            "quantization, then int8.",
            case_sensitive=False,
        ),
    ] = Method.dynamic,
    data: Annotated[
        str | None,
        typer.Option(
            help="PATH_OR_URI of labelled data (.npz with x/y, or .csv with a label column): "
            "calibration rows for static, training data for qat."
        ),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="qat: epochs of fine-tuning (3).")] = None,
    lr: Annotated[float | None, typer.Option(help="qat: Adam's learning rate (1e-4).")] = None,
    evaluate_: EvaluateOption = True,
    as_json: JsonOption = False,
) -> None:
    """An int8 copy of a version (dynamic, static or QAT) as the next version, evaluated
    next to the original."""
    client = output.client()
    with console.status(f"quantizing {ref} ({method.value})"):
        version = client.models.quantize(
            ref, method=method.value, data=data, epochs=epochs, lr=lr, evaluate=evaluate_
        )
    _print_derived(client, version, version.quantization or "", ref, as_json)


@app.command("export")
@handled
def export(
    ref: RefArg,
    format_: Annotated[
        str, typer.Option("--format", help="onnx: a graph the endpoint serves with ONNX Runtime.")
    ] = "onnx",
    evaluate_: EvaluateOption = True,
    as_json: JsonOption = False,
) -> None:
    """A version exported (to ONNX) as the next version, evaluated next to the original."""
    client = output.client()
    with console.status(f"exporting {ref} to {format_}"):
        version = client.models.export(ref, format=format_, evaluate=evaluate_)
    _print_derived(client, version, version.format, ref, as_json)


def _print_derived(
    client: Client, version: ModelVersion, what: str, ref: str, as_json: bool
) -> None:
    """A copy made from ``ref``: its size against the original's, their latest evaluations."""
    if as_json:
        output.print_json(version)
        return
    origin = client.models.get(version.lineage.derived_from or ref)
    console.print(
        f"{_ref(version)}: {what}, {output.size(version.size_bytes)} "
        f"(from {_ref(origin)}, {output.size(origin.size_bytes)})"
    )
    evaluations = [e for v in (origin, version) for e in client.evaluations.list(_ref(v))[-1:]]
    if evaluations:
        console.print(evaluation_table(evaluations))


@app.command("delete")
@handled
def delete(
    name: Annotated[str, typer.Argument(help="Model name.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Delete a model with all its versions (refused while an endpoint serves it)."""
    if not yes:
        typer.confirm(f"Delete model {name} and every version of it?", abort=True)
    output.client().models.delete(name)
    console.print(f"Deleted model {name}.")
