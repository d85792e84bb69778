"""`naiad endpoints`: deploy a model, invoke it, watch its traffic live, roll out, delete."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Group
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from naiad.cli import output
from naiad.cli.output import console, handled
from naiad.core.errors import InvalidInput

if TYPE_CHECKING:
    from naiad.schemas.endpoints import Endpoint, EndpointMetrics, Variant
    from naiad.sdk.client import Client

app = typer.Typer(
    no_args_is_help=True, help="Serve registered models over HTTP: deploy, invoke, watch, roll out."
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
NameArg = Annotated[str, typer.Argument(help="Endpoint name.")]
WaitOption = Annotated[
    bool, typer.Option("--wait/--no-wait", help="Wait until it is InService (or gone).")
]
MaxBatch = Annotated[int | None, typer.Option(help="Rows per model call (default 64).")]
MaxDelay = Annotated[
    float | None, typer.Option(help="Longest a request waits to fill a batch (default 5).")
]
QueueSize = Annotated[
    int | None, typer.Option(help="Requests a replica queues before answering 503 (1024).")
]
MinReplicas = Annotated[
    int | None,
    typer.Option(help="Autoscale: never fewer replicas (default 1; 0 stops them all when idle)."),
]
MaxReplicas = Annotated[
    int | None, typer.Option(help="Autoscale between --min-replicas and this many replicas.")
]
TargetInFlight = Annotated[
    float | None, typer.Option(help="Autoscale: requests in flight per replica to aim at (8).")
]
ScaleUpAfter = Annotated[
    str | None, typer.Option(help="Autoscale: above the target this long adds replicas (10s).")
]
ScaleDownAfter = Annotated[
    str | None, typer.Option(help="Autoscale: fewer would do this long removes some (60s).")
]
Cooldown = Annotated[
    str | None, typer.Option(help="Autoscale: after a change, no other change this long (30s).")
]
IdleAfter = Annotated[
    str | None,
    typer.Option(help="With --min-replicas 0: no request this long stops the last replica (5m)."),
]
ColdStartTimeout = Annotated[
    str | None,
    typer.Option(help="With --min-replicas 0: how long a request waits for a replica (60s)."),
]

STYLES = {
    "Creating": "cyan",
    "InService": "green",
    "Updating": "yellow",
    "Failed": "red",
    "Deleting": "yellow",
}
SPARKS = "▁▂▃▄▅▆▇█"


def status_text(status: str) -> Text:
    return Text(status, style=STYLES.get(status, ""))


def _ms(value: float | None) -> str:
    return output.NONE if value is None else f"{value:.1f}ms"


def _step(seconds: int) -> str:
    return f"{seconds // 3600}h" if seconds % 3600 == 0 else f"{seconds // 60}m"


def _share(variant: Variant, variants: list[Variant]) -> str:
    total = sum(v.weight for v in variants) or 1.0
    return f"{variant.weight / total:.0%}"


def _healthy(variant: Variant) -> str:
    count = f"{sum(r.healthy for r in variant.live)}/{variant.replicas}"
    scaling = variant.autoscaling
    return f"{count} ({scaling.min_replicas}-{scaling.max_replicas})" if scaling else count


def _policy(
    scale_up_after: str | None,
    scale_down_after: str | None,
    cooldown: str | None,
    idle_after: str | None,
    cold_start_timeout: str | None,
) -> dict[str, float] | None:
    """The autoscaling windows given as durations, by the fields they set."""
    given = {
        "scale_up_after_s": (scale_up_after, "--scale-up-after"),
        "scale_down_after_s": (scale_down_after, "--scale-down-after"),
        "cooldown_s": (cooldown, "--cooldown"),
        "idle_after_s": (idle_after, "--idle-after"),
        "cold_start_timeout_s": (cold_start_timeout, "--cold-start-timeout"),
    }
    policy = {
        field: output.parse_duration(text, option)
        for field, (text, option) in given.items()
        if text is not None
    }
    return policy or None


def _describe_scaling(variant: Variant) -> str | None:
    """An autoscaled variant's policy on one line, so `show` says why the count moves."""
    a = variant.autoscaling
    if a is None:
        return None
    text = (
        f"autoscaling {variant.name}: {a.min_replicas}-{a.max_replicas} replicas, target "
        f"{a.target_in_flight:g} in flight per replica; up after {a.scale_up_after_s:g}s, "
        f"down after {a.scale_down_after_s:g}s, cool-down {a.cooldown_s:g}s"
    )
    if a.min_replicas == 0:
        text += (
            f"; to zero after {a.idle_after_s:g}s idle, a request waits up to "
            f"{a.cold_start_timeout_s:g}s for a replica"
        )
    return text


def _wait(client: Client, name: str, verb: str, timeout: float = 600.0) -> Endpoint:
    """A spinner with the endpoint's latest reason until it is InService; a failure exits 1."""
    from naiad.schemas.endpoints import ROLLED_BACK

    deadline = time.monotonic() + timeout
    with console.status(f"{verb} {name}...") as spinner:
        while True:
            endpoint = client.endpoints.get(name).endpoint
            reason = endpoint.status_reason or ""
            spinner.update(f"{verb} {name}: {endpoint.status} - {escape(reason)}")
            if endpoint.status == "Failed":
                output.fail(f"Endpoint {name} failed: {reason}")
            if endpoint.status == "InService" and not endpoint.pending_variants:
                if reason.startswith(ROLLED_BACK):
                    output.fail(reason)
                return endpoint
            if time.monotonic() > deadline:
                output.fail(f"Endpoint {name} is still {endpoint.status} after {timeout:g}s.")
            time.sleep(0.5)


@app.command("deploy")
@handled
def deploy(
    name: NameArg,
    model: Annotated[str, typer.Option(help="NAME, NAME:VERSION or NAME@ALIAS.")],
    replicas: Annotated[
        int, typer.Option(help="Serving processes (with autoscaling: where it starts).")
    ] = 1,
    min_replicas: MinReplicas = None,
    max_replicas: MaxReplicas = None,
    target_in_flight: TargetInFlight = None,
    scale_up_after: ScaleUpAfter = None,
    scale_down_after: ScaleDownAfter = None,
    cooldown: Cooldown = None,
    idle_after: IdleAfter = None,
    cold_start_timeout: ColdStartTimeout = None,
    max_batch: MaxBatch = None,
    max_delay_ms: MaxDelay = None,
    queue_size: QueueSize = None,
    capture: Annotated[
        float, typer.Option(help="Fraction of requests kept in the artifact store (0-1).")
    ] = 0.0,
    wait: WaitOption = True,
    as_json: JsonOption = False,
) -> None:
    """Serve a registered model at POST /endpoints/NAME/invocations; with --max-replicas, the
    replicas follow the load (and --min-replicas 0 stops them when idle)."""
    client = output.client()
    handle = client.endpoints.deploy(
        name,
        model=model,
        replicas=replicas,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        target_in_flight=target_in_flight,
        autoscaling=_policy(
            scale_up_after, scale_down_after, cooldown, idle_after, cold_start_timeout
        ),
        max_batch=max_batch,
        max_delay_ms=max_delay_ms,
        queue_size=queue_size,
        capture_fraction=capture,
    )
    endpoint = _wait(client, name, "Deploying") if wait else handle.endpoint
    if as_json:
        output.print_json(endpoint)
        return
    console.print(
        Text.assemble(
            (f"{endpoint.name} ", "bold"), status_text(endpoint.status), f"  {endpoint.url}"
        )
    )


@app.command("update")
@handled
def update(
    name: NameArg,
    model: Annotated[
        str | None, typer.Option(help="Roll out this model (replaces the variants).")
    ] = None,
    canary: Annotated[
        float | None, typer.Option(help="Send only this % of traffic to --model; keep the rest.")
    ] = None,
    replicas: Annotated[
        int | None,
        typer.Option(help="Replicas of each variant; alone, a fixed count (autoscaling off)."),
    ] = None,
    min_replicas: MinReplicas = None,
    max_replicas: MaxReplicas = None,
    target_in_flight: TargetInFlight = None,
    scale_up_after: ScaleUpAfter = None,
    scale_down_after: ScaleDownAfter = None,
    cooldown: Cooldown = None,
    idle_after: IdleAfter = None,
    cold_start_timeout: ColdStartTimeout = None,
    max_batch: MaxBatch = None,
    max_delay_ms: MaxDelay = None,
    queue_size: QueueSize = None,
    capture: Annotated[float | None, typer.Option(help="Capture fraction (0-1).")] = None,
    wait: WaitOption = True,
    as_json: JsonOption = False,
) -> None:
    """Roll out a change: new replicas start, traffic switches once they answer, old ones drain.
    Autoscaling options alone change every variant's autoscaling (on top of what it has)."""
    client = output.client()
    handle = client.endpoints.update(
        name,
        model,
        canary=canary,
        replicas=replicas,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        target_in_flight=target_in_flight,
        autoscaling=_policy(
            scale_up_after, scale_down_after, cooldown, idle_after, cold_start_timeout
        ),
        max_batch=max_batch,
        max_delay_ms=max_delay_ms,
        queue_size=queue_size,
        capture_fraction=capture,
    )
    endpoint = _wait(client, name, "Rolling out") if wait else handle.endpoint
    if as_json:
        output.print_json(endpoint)
        return
    console.print(Text.assemble((f"{endpoint.name} ", "bold"), status_text(endpoint.status)))
    console.print(escape(endpoint.status_reason or ""))


@app.command("ls")
@handled
def list_endpoints(created_by: output.CreatedBy = None, as_json: JsonOption = False) -> None:
    """Endpoints with their status, variants and healthy replicas."""
    endpoints = output.client().endpoints.list(created_by=created_by)
    if as_json:
        output.print_json(endpoints)
        return
    table = Table(title="endpoints")
    for column in ("name", "status", "variants", "replicas", "updated", "reason"):
        table.add_column(column)
    for e in endpoints:
        table.add_row(
            e.name,
            status_text(e.status),
            ", ".join(f"{v.model} {_share(v, e.variants)}" for v in e.variants) or output.NONE,
            " ".join(_healthy(v) for v in e.variants) or output.NONE,
            output.relative_time(e.updated_at),
            escape((e.status_reason or "")[:70]),
        )
    console.print(table)


def _variants_table(endpoint: Endpoint, metrics: EndpointMetrics | None) -> Table:
    figures = {m.variant: m for m in (metrics.variants if metrics else [])}
    table = Table(title="variants", title_justify="left")
    columns = ["variant", "model", "traffic", "healthy", "restarts", "rps", "p50", "p99"]
    columns += ["replica p99", "requests", "5xx", "4xx", "queue"]
    for column in columns:
        table.add_column(column, justify="left" if column in ("variant", "model") else "right")
    for v in endpoint.variants:
        m = figures.get(v.name)
        row: list[str | Text] = [v.name, v.model, _share(v, endpoint.variants), _healthy(v)]
        row.append(str(sum(r.restarts for r in v.live)))
        if m is None:
            row += [output.NONE] * 8
        else:
            row += [
                f"{m.rps:.1f}",
                _ms(m.proxy_latency.p50_ms),
                _ms(m.proxy_latency.p99_ms),
                _ms(m.latency.p99_ms),
                str(m.requests),
                Text(str(m.errors), style="red" if m.errors else ""),
                str(m.client_errors),
                str(m.queue_depth),
            ]
        table.add_row(*row)
    for v in endpoint.pending_variants:
        table.add_row(
            Text(v.name, style="yellow"),
            v.model,
            "(rolling out)",
            _healthy(v),
            str(sum(r.restarts for r in v.live)),
            *([""] * 8),
        )
    return table


def _batch_histogram(metrics: EndpointMetrics) -> Table | None:
    rows = [(m.variant, size, n) for m in metrics.variants for size, n in m.batch_sizes.items()]
    if not rows:
        return None
    peak = max(n for _, _, n in rows)
    table = Table(
        title="batch sizes (rows per model call, last window)", title_justify="left", box=None
    )
    for column in ("variant", "rows", "batches", ""):
        table.add_column(column)
    for variant, size, n in rows:
        table.add_row(variant, size, str(n), Text("█" * max(1, round(24 * n / peak)), "cyan"))
    return table


def _spark(values: list[float]) -> str:
    if not values:
        return ""
    top = max(values) or 1.0
    return "".join(SPARKS[min(len(SPARKS) - 1, int(v / top * (len(SPARKS) - 1)))] for v in values)


def render(endpoint: Endpoint, metrics: EndpointMetrics | None) -> Group:
    parts: list[Any] = [
        Text.assemble(
            (f"{endpoint.name}  ", "bold"), status_text(endpoint.status), f"  {endpoint.url}"
        ),
    ]
    if endpoint.status_reason:
        parts.append(Text(endpoint.status_reason, style="dim"))
    b = endpoint.batching
    parts.append(
        Text(
            f"batching: max {b.max_batch} rows, max delay {b.max_delay_ms:g}ms, queue "
            f"{b.queue_size}; capture {endpoint.capture.fraction:g}",
            style="dim",
        )
    )
    for v in endpoint.variants:
        scaling = _describe_scaling(v)
        if scaling:
            parts.append(Text(scaling, style="dim"))
    parts.append(_variants_table(endpoint, metrics))
    if metrics is not None:
        histogram = _batch_histogram(metrics)
        if histogram is not None:
            parts.append(histogram)
        for variant, points in metrics.history.items():
            rps = [p.rps for p in points[-60:]]
            if any(rps):
                parts.append(
                    Text(f"{variant} rps (last {len(rps)}s) {_spark(rps)} peak {max(rps):.1f}")
                )
        if metrics.retries or metrics.unavailable:
            parts.append(
                Text(
                    f"proxy: {metrics.retries} retried on another replica, "
                    f"{metrics.unavailable} answered 503 (no healthy replica)",
                    style="yellow",
                )
            )
    return Group(*parts)


def _watch(client: Client, name: str, interval: float) -> None:
    def frame() -> Panel:
        endpoint = client.endpoints.get(name).endpoint
        metrics = client.endpoints.metrics(name, window=10, points=60)
        return Panel(
            render(endpoint, metrics),
            title="naiad endpoint",
            subtitle="Ctrl-C to stop",
            border_style="cyan",
        )

    with (
        output.ctrl_c_flag() as stop,
        Live(frame(), console=console, refresh_per_second=4) as live,
    ):
        while not stop.wait(interval):
            live.update(frame())


@app.command("show")
@handled
def show(
    name: NameArg,
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Refresh live until Ctrl-C.")
    ] = False,
    interval: Annotated[float, typer.Option(help="Seconds between refreshes.")] = 1.0,
    as_json: JsonOption = False,
) -> None:
    """One endpoint: status, variants, live traffic and its timeline."""
    client = output.client()
    if watch and not as_json:
        _watch(client, name, interval)
        return
    endpoint = client.endpoints.get(name).endpoint
    metrics = client.endpoints.metrics(name, window=10, points=60)
    if as_json:
        output.print_json({"endpoint": endpoint, "metrics": metrics})
        return
    console.print(render(endpoint, metrics))
    timeline = Table(title="timeline", title_justify="left")
    for column in ("time", "status", "reason"):
        timeline.add_column(column)
    for t in endpoint.transitions:
        timeline.add_row(output.iso_time(t.at), status_text(t.status), escape(t.reason or ""))
    console.print(timeline)
    if endpoint.scaling_events:
        console.print(_scaling_table(endpoint))


def _scaling_table(endpoint: Endpoint) -> Table:
    table = Table(title="autoscaling (latest decisions)", title_justify="left")
    for column in ("time", "variant", "replicas", "reason"):
        table.add_column(column)
    for e in endpoint.scaling_events:
        table.add_row(
            output.iso_time(e.at),
            e.variant,
            f"{e.from_replicas} -> {e.to_replicas}",
            escape(e.reason),
        )
    return table


@app.command("invoke")
@handled
def invoke(
    name: NameArg,
    file: Annotated[Path | None, typer.Option(help='A JSON body, e.g. {"inputs": [...]}.')] = None,
    npy: Annotated[
        Path | None, typer.Option(help="A .npy array (sent as application/x-npy).")
    ] = None,
    data: Annotated[str | None, typer.Option(help="An inline JSON body.")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the predictions here as .npy.")] = None,
) -> None:
    """Send one request through the server to the endpoint; print its answer as JSON."""
    if sum(x is not None for x in (file, npy, data)) != 1:
        raise InvalidInput("Give exactly one of --file (JSON), --npy or --data.")
    import numpy as np

    client = output.client()
    if npy is not None:
        answer: Any = client.endpoints.predict(name, np.load(npy, allow_pickle=False))
    else:
        body = file.read_bytes() if file is not None else (data or "").encode()
        answer = client.endpoints.invoke(name, body)
    if out is not None:
        predictions = answer if npy is not None else np.asarray(answer["predictions"])
        buffer = io.BytesIO()
        np.save(buffer, predictions, allow_pickle=False)
        out.write_bytes(buffer.getvalue())
        console.print(f"Wrote {predictions.shape} predictions to {escape(str(out))}.")
        return
    output.print_json({"predictions": answer.tolist()} if npy is not None else answer)


@app.command("metrics")
@handled
def metrics(
    name: NameArg,
    window: Annotated[float, typer.Option(help="Seconds the rates cover.")] = 10.0,
    as_json: JsonOption = False,
) -> None:
    """Traffic per variant: requests, errors, latency percentiles, batch sizes, queue."""
    client = output.client()
    figures = client.endpoints.metrics(name, window=window)
    if as_json:
        output.print_json(figures)
        return
    console.print(render(client.endpoints.get(name).endpoint, figures))


@app.command("history")
@handled
def history(
    name: NameArg,
    since: Annotated[str, typer.Option(help="How far back: 90m, 6h, 7d, or seconds.")] = "1h",
    step: Annotated[
        str | None,
        typer.Option(help="What one row sums: 1m, 5m, 1h... (default: at most 720 rows)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Traffic per variant over hours or days, from the minutes the server saved."""
    seconds = output.parse_duration(since, "--since")
    step_s = None if step is None else output.parse_duration(step, "--step")
    if step_s is not None and step_s % 60:
        raise InvalidInput(f"--step {step!r} is not a whole number of minutes; try 1m, 5m or 1h.")
    figures = output.client().endpoints.history(
        name, since=seconds, step=None if step_s is None else int(step_s)
    )
    if as_json:
        output.print_json(figures)
        return
    if not any(figures.variants.values()):
        console.print(f"No traffic saved for {escape(name)} in the last {escape(since)}.")
        return
    for variant, points in figures.variants.items():
        table = Table(
            title=f"{variant}: one row per {_step(figures.step_s)}",
            title_justify="left",
            box=None,
        )
        for column in ("from", "req/s", "requests", "errors", "p50", "p99", "batch", "queue"):
            table.add_column(column, justify="left" if column == "from" else "right")
        for p in points:
            table.add_row(
                time.strftime("%Y-%m-%d %H:%M", time.localtime(p.at)),
                f"{p.rps:.1f}",
                str(p.requests),
                Text(str(p.errors), style="red" if p.errors else ""),
                _ms(p.p50_ms),
                _ms(p.p99_ms),
                output.NONE if p.batch_mean is None else f"{p.batch_mean:.1f}",
                str(p.queue_depth),
            )
        console.print(table)
        rps = [p.rps for p in points]
        console.print(Text(f"{variant} req/s {_spark(rps)} peak {max(rps):.1f}"))


@app.command("delete")
@handled
def delete(name: NameArg, wait: WaitOption = True) -> None:
    """Stop serving: replicas finish what they hold, then stop; the endpoint is removed."""
    client = output.client()
    if wait:
        with console.status(f"Deleting {name}: draining its replicas..."):
            client.endpoints.delete(name, wait=True)
        console.print(f"Deleted endpoint {escape(name)}.")
    else:
        client.endpoints.delete(name)
        console.print(f"Deleting endpoint {escape(name)}.")
