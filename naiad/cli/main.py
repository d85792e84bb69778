"""Entry point: `naiad <noun> <verb>`."""

import sys

import typer

from naiad.cli import server

HELP = "Naiad: training jobs, experiment tracking and model serving on your own machine."


def build_app(server_only: bool = False) -> typer.Typer:
    """The command tree; ``server_only`` leaves out the client commands and what they import."""
    app = typer.Typer(name="naiad", help=HELP, no_args_is_help=True, pretty_exceptions_enable=False)
    app.callback()(lambda: None)
    app.add_typer(server.app, name="server")
    if not server_only:
        from naiad.cli import (
            audit,
            backup,
            connections,
            endpoints,
            experiments,
            gc,
            jobs,
            keys,
            models,
            notebooks,
            projects,
            runs,
            tuning,
            users,
        )

        app.add_typer(experiments.app, name="experiments")
        app.add_typer(runs.app, name="runs")
        app.add_typer(jobs.app, name="jobs")
        app.add_typer(tuning.app, name="tuning")
        app.add_typer(models.app, name="models")
        app.add_typer(endpoints.app, name="endpoints")
        app.add_typer(keys.app, name="keys")
        app.add_typer(connections.app, name="connections")
        app.add_typer(notebooks.app, name="notebooks")
        app.add_typer(users.app, name="users")
        app.add_typer(projects.app, name="projects")
        app.command("login")(users.login)
        app.command("logout")(users.logout)
        app.command("whoami")(users.whoami)
        app.command("train")(jobs.train)
        app.command("tune")(tuning.tune)
        app.command("gc")(gc.gc)
        app.command("backup")(backup.backup)
        app.command("restore")(backup.restore)
        app.command("audit")(audit.audit)
    return app


def main() -> None:
    """`naiad server` loads only what the server needs: its cold start is measured in seconds."""
    build_app(server_only=sys.argv[1:2] == ["server"])()


if __name__ == "__main__":
    main()
