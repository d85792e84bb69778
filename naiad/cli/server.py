"""`naiad server`: start the API server."""

from typing import Annotated

import typer

from naiad.cli.output import fail, handled
from naiad.settings import DEFAULT_PORT


@handled
def server(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = DEFAULT_PORT,
) -> None:
    """Start the API server and console (SQLite + files under $NAIAD_HOME by default)."""
    from pydantic import ValidationError

    from naiad.server.run import serve
    from naiad.settings import load_settings

    try:
        settings = load_settings(host=host, port=port)
    except ValidationError as exc:
        problems = "; ".join(
            f"NAIAD_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
        )
        fail(f"The server settings are not valid: {problems}.")
    serve(settings)
