"""`naiad backup` and `naiad restore`: run beside the server, on the home's database and
artifact store themselves (the same NAIAD_* settings as the server), not through its API."""

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from naiad.cli import output
from naiad.cli.output import console, handled

if TYPE_CHECKING:
    from naiad.server.backup import Report

PHASES = {"artifacts": "Copying artifacts", "verifying": "Verifying checksums"}


def _settings():  # type: ignore[no-untyped-def]
    from naiad.settings import load_settings

    return load_settings()


SHOWN = {
    "experiments": "experiment",
    "runs": "run",
    "models": "model",
    "model_versions": "model version",
    "endpoints": "endpoint",
    "jobs": "job",
}


def _rows(report: "Report") -> str:
    counts = [(report.rows[t], one) for t, one in SHOWN.items() if t in report.rows]
    return ", ".join(f"{n:,} {one if n == 1 else one + 's'}" for n, one in counts)


def _files(report: "Report") -> str:
    noun = "artifact file" if report.files == 1 else "artifact files"
    return f"{report.files:,} {noun} ({output.size(report.bytes)})"


def _with_progress(
    work: "Callable[..., Report]", settings: Any, path: Path, as_json: bool
) -> "Report | None":
    """Run ``work`` with bars on a terminal; the report, or None once printed as JSON."""
    with output.transfer_progress("the backup", PHASES) as progress:
        report = work(settings, path, progress)
    if as_json:
        output.print_json(report)
        return None
    return report


@handled
def backup(
    path: Annotated[Path, typer.Argument(help="A new directory to write the backup into.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Back up this home while its server runs: a snapshot of the database (SQLite's
    online backup, or pg_dump), the artifact store's files with their checksums, and the
    admin token. The directory appears only once the backup is complete."""
    from naiad.server.backup import backup as take

    settings = _settings()
    report = _with_progress(take, settings, path, as_json)
    if report is None:
        return
    console.print(
        f"Backed up {settings.home} to {report.path} in {output.duration(report.seconds)}: "
        f"the {report.database} database at revision {report.revision} ({_rows(report)}) "
        f"and {_files(report)}."
    )


@handled
def restore(
    path: Annotated[Path, typer.Argument(help="A directory `naiad backup` wrote.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Restore a backup into a fresh home (NAIAD_HOME, or an empty NAIAD_DATABASE_URL and
    NAIAD_ARTIFACT_URI): every file is checked against its checksum before anything is
    written, and an older schema is migrated to this Naiad's. Start the server after."""
    from naiad.server.backup import restore as put_back

    settings = _settings()
    report = _with_progress(put_back, settings, path, as_json)
    if report is None:
        return
    upgraded = f", migrated from revision {report.upgraded_from}" if report.upgraded_from else ""
    console.print(
        f"Restored {report.path} (taken {report.created_at}) into {settings.home} in "
        f"{output.duration(report.seconds)}: the {report.database} database at revision "
        f"{report.revision}{upgraded} ({_rows(report)}) and {_files(report)}. Start it with "
        "`naiad server`."
    )
