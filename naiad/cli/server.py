"""`naiad server`: start the API server; `status` and `stop` for the one this home runs."""

from typing import Annotated

import typer

from naiad.cli.output import console, fail, handled, print_json
from naiad.settings import DEFAULT_PORT

app = typer.Typer(
    help="Start the API server and console (SQLite + files under $NAIAD_HOME by default); "
    "`status` and `stop` manage the one this home runs.",
    no_args_is_help=False,
)


@app.callback(invoke_without_command=True)
@handled
def server(
    ctx: typer.Context,
    host: Annotated[
        str | None,
        typer.Option(help="Address to listen on (default: NAIAD_HOST, else 127.0.0.1)."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(help=f"Port to listen on (default: NAIAD_PORT, else {DEFAULT_PORT})."),
    ] = None,
) -> None:
    """Start the API server and console (SQLite + files under $NAIAD_HOME by default)."""
    if ctx.invoked_subcommand is not None:
        return
    from pydantic import ValidationError

    from naiad.server.run import serve
    from naiad.settings import load_settings

    try:
        given = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
        settings = load_settings(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"NAIAD_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
        )
        fail(f"The server settings are not valid: {problems}.")
    serve(settings)


@app.command()
@handled
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Whether this home's server runs, where, and a console sign-in link (exit 1 if not)."""
    from naiad.sdk.local_server import server_status, sign_in_link

    state = server_status()
    if as_json:
        print_json(state.to_dict())
    elif not state.running:
        console.print(
            f"No Naiad server is running for the home {state.home}; start one with `naiad server`."
        )
    else:
        health = "healthy" if state.healthy else f"not healthy: {state.problem or 'no answer'}"
        console.print(f"Naiad server running (pid {state.pid}), {health}", soft_wrap=True)
        console.print(f"  URL      {state.url}", soft_wrap=True)
        console.print(f"  Home     {state.home}", soft_wrap=True)
        console.print(f"  Version  {state.version or '-'}", soft_wrap=True)
        console.print(f"  Console  {sign_in_link(state)}", soft_wrap=True, markup=False)
    if not state.running:
        raise typer.Exit(1)


@app.command()
@handled
def stop(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for it to exit.")] = 30.0,
) -> None:
    """Stop this home's server gracefully; jobs and endpoint replicas keep running."""
    from naiad.sdk.local_server import stop_server

    try:
        state = stop_server(timeout=timeout)
    except TimeoutError as exc:
        fail(str(exc))
    if not state.running:
        console.print(f"No Naiad server is running for the home {state.home}.")
        return
    console.print(
        f"Stopped the server (pid {state.pid}, {state.url}). Jobs and endpoint replicas keep "
        "running; the next `naiad server` re-attaches to them.",
        soft_wrap=True,
    )
