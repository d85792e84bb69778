"""`naiad server`: start the API server."""

from typing import Annotated

import typer

from naiad.cli.output import fail, handled
from naiad.settings import DEFAULT_PORT


@handled
def server(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on [default: NAIAD_HOST or 127.0.0.1].")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help=f"Port to listen on [default: NAIAD_PORT or {DEFAULT_PORT}].")
    ] = None,
) -> None:
    """Start the API server and console (SQLite + files under $NAIAD_HOME by default)."""
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
