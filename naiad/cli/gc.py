"""`naiad gc`: free disk space on the server, and say how much."""

import re
from typing import Annotated

import typer

from naiad.cli import output
from naiad.cli.output import console, handled

_ZERO = re.compile(r"0+(\.0*)?[smhd]?")


def _days(text: str) -> float:
    """``--older-than`` in days; unlike other durations it may be 0 (every finished job)."""
    if _ZERO.fullmatch(text.strip().lower()):
        return 0.0
    return output.parse_duration(text, "--older-than") / 86400


@handled
def gc(
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            help="Clear work directories of jobs that finished longer ago than this "
            "(e.g. 3d, 12h, 0 for all); default: the server's NAIAD_JOB_RETENTION_DAYS.",
        ),
    ] = None,
    vacuum: Annotated[
        bool,
        typer.Option(
            "--vacuum", help="Also compact the database (needs free space about its size)."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Free disk space: finished jobs' work directories (their outputs and logs stay in the
    artifact store), spooled metrics the server already has, files of deleted runs, and
    the database's write-ahead log. Works on a full disk."""
    days = None if older_than is None else _days(older_than)
    with output.client() as client, output.err_console.status("Collecting garbage..."):
        result = client.gc(older_than_days=days, vacuum=vacuum)
    if as_json:
        output.print_json(result)
        return
    dirs = f"{result.work_dirs} work director{'y' if result.work_dirs == 1 else 'ies'}"
    parts = [
        f"{dirs} of jobs finished over {result.older_than_days:g} days ago "
        f"({output.size(result.work_dir_bytes)})",
        f"{result.spool_files} spool file(s) ({output.size(result.spool_bytes)})",
        f"files of deleted runs and jobs ({output.size(result.orphan_bytes)})",
        f"the database's write-ahead log ({output.size(result.wal_bytes)})",
    ]
    if result.vacuum_bytes is not None:
        parts.append(f"VACUUM ({output.size(result.vacuum_bytes)})")
    console.print(
        f"Freed {output.size(result.freed_bytes)} ({result.freed_bytes:,} bytes): "
        + "; ".join(parts)
        + "."
    )
    if result.spool_waiting:
        console.print(
            f"{result.spool_waiting} spooled metric batch(es) wait for the server; "
            "`naiad runs sync` sends them."
        )
    for problem in result.problems:
        output.warn(problem)
