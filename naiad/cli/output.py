"""What every CLI command shares: consoles, one-sentence errors, JSON output, formatting."""

import functools
import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, ParamSpec, TypeVar

import orjson
import typer
from pydantic import BaseModel
from rich.console import Console
from rich.text import Text

from naiad.core.errors import InvalidInput, NaiadError
from naiad.core.units import parse_size

if TYPE_CHECKING:
    from naiad.sdk.client import Client

P = ParamSpec("P")
R = TypeVar("R")

# Width Rich uses when stdout is not a terminal and COLUMNS is unset: wide enough that a
# piped table (grep, less, a CI log) keeps one row per line instead of folding at 80.
PIPE_WIDTH = 160


def _console(stderr: bool = False) -> Console:
    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = PIPE_WIDTH
    return console


console = _console()
err_console = _console(stderr=True)


# -- errors ---------------------------------------------------------------------------------
def fail(message: str, code: int = 1) -> NoReturn:
    """Print one red sentence on stderr and exit with ``code`` (1 unless told)."""
    sentence = " ".join(str(message).split())  # one line, whatever the source
    err_console.print(Text.assemble(("Error: ", "bold red"), (sentence, "red")), soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def ctrl_c_flag() -> Iterator[threading.Event]:
    """For live views: Ctrl-C sets the event instead of raising KeyboardInterrupt.

    An interrupt raised in the middle of a redraw can leave the display's lock held,
    and the exit then hangs; a flag is read between redraws.
    """
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def clean_errors() -> Iterator[None]:
    """Turn the errors a person can meet into one sentence and an exit, never a traceback."""
    try:
        yield
    except NaiadError as exc:
        fail(exc.message)
    except KeyboardInterrupt:
        fail("Interrupted.", code=130)
    except OSError as exc:  # a local file we could not read or write
        where = f" {exc.filename}" if exc.filename else ""
        fail(f"Cannot use{where}: {exc.strerror or exc}.")


def handled(func: Callable[P, R]) -> Callable[P, R]:
    """Decorator form of :func:`clean_errors` for a Typer command."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with clean_errors():
            return func(*args, **kwargs)

    return wrapper


@contextmanager
def transfer_progress(
    what: str, labels: dict[str, str] | None = None
) -> Iterator[Callable[[str, int, int], None] | None]:
    """Bars on stderr while ``what`` is packed and uploaded; None when nobody watches.

    Yields the ``progress(phase, done, total)`` callback the SDK's uploads take;
    ``labels``: the bars' names by phase, when the phases are not pack and upload.
    """
    if not err_console.is_interactive:
        yield None
        return
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TaskID,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    bars = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )
    labels = labels or {"pack": f"Packing {what}", "upload": f"Uploading {what}"}
    tasks: dict[str, TaskID] = {}

    def update(phase: str, done: int, total: int) -> None:
        if phase not in tasks:
            tasks[phase] = bars.add_task(labels.get(phase, phase), total=total)
        bars.update(tasks[phase], completed=done, total=total)

    with bars:
        yield update


def warn(message: str) -> None:
    """One yellow sentence on stderr; the command goes on."""
    sentence = " ".join(str(message).split())
    err_console.print(
        Text.assemble(("Warning: ", "bold yellow"), (sentence, "yellow")), soft_wrap=True
    )


def client() -> "Client":
    """The SDK client for the configured server (NAIAD_URL/NAIAD_TOKEN or $NAIAD_HOME)."""
    from naiad.sdk.client import Client  # on use: `naiad server` and --help need none of it

    return Client()


# -- JSON ------------------------------------------------------------------------------------
def _default(obj: Any) -> Any:
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"cannot serialize {type(obj).__name__}")


def to_jsonable(obj: Any) -> Any:
    """Pydantic models (and lists/dicts of them) as plain JSON values."""
    return orjson.loads(dumps(obj))


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, default=_default, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)


def print_json(obj: Any) -> None:
    """Write ``obj`` as pretty JSON to stdout, untouched by Rich (no wrapping, no markup)."""
    sys.stdout.buffer.write(dumps(obj) + b"\n")
    sys.stdout.flush()


# -- formatting ------------------------------------------------------------------------------
CreatedBy = Annotated[
    str | None,
    typer.Option("--created-by", help="Only what this user created (admin: the admin token)."),
]
NONE = "-"


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def iso_time(dt: datetime | None) -> str:
    """Local time, ISO 8601 to the second, with the UTC offset."""
    if dt is None:
        return NONE
    return _aware(dt).astimezone().isoformat(timespec="seconds")


def relative_time(dt: datetime | None, now: datetime | None = None) -> str:
    """``just now``, ``5m ago``, ``3h ago``, ``2d ago``; older than 30 days as a date."""
    if dt is None:
        return NONE
    dt = _aware(dt)
    seconds = ((now or datetime.now(UTC)) - dt).total_seconds()
    if seconds < 0:
        return "in the future"
    if seconds < 10:
        return "just now"
    if seconds < 60:
        return f"{int(seconds)}s ago"
    if seconds < 3600:
        return f"{int(seconds // 60)}m ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h ago"
    if seconds < 30 * 86400:
        return f"{int(seconds // 86400)}d ago"
    return dt.astimezone().strftime("%Y-%m-%d")


def duration(seconds: float | None) -> str:
    """``850ms``, ``4.2s``, ``3m 05s``, ``1h 02m``, ``2d 03h``."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return NONE
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str, option: str) -> float:
    """``90`` (seconds), ``45s``, ``30m``, ``6h``, ``7d``: seconds, or a 400 naming ``option``."""
    value = text.strip().lower()
    unit = _UNITS.get(value[-1:])
    number = value[:-1] if unit else value
    try:
        seconds = float(number) * (unit or 1)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidInput(
            f"{option} {text!r} is not a duration; write seconds or a number with s, m, h "
            "or d, e.g. 90m or 7d."
        )
    return seconds


def parse_memory(text: str, option: str = "--memory") -> int:
    """``512m``, ``4g``, ``1.5GiB`` or ``2048`` (MiB) as whole MiB."""
    size = parse_size(text, bare="m")
    if size is None or size <= 0:
        raise InvalidInput(
            f"{option} {text!r} is not a memory size; give e.g. 512m, 4g or 2048 (MiB)."
        )
    return max(1, round(size / 2**20))


def run_duration(start: datetime, end: datetime | None, running: bool) -> str:
    """How long a run took, or has been going for while it runs."""
    if end is not None:
        return duration((_aware(end) - _aware(start)).total_seconds())
    if running:
        return duration((datetime.now(UTC) - _aware(start)).total_seconds())
    return NONE


def metric_value(value: float | str | None) -> str:
    """4 significant digits; NaN and infinities spelled out; None as a dash."""
    if value is None:
        return NONE
    if isinstance(value, str):
        return value  # "NaN", "Infinity", "-Infinity" as they travel on the wire
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return f"{value:.4g}"


def param_value(value: Any) -> str:
    """A param as a person typed it: full precision, booleans and null as in JSON."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def size(n: int | None) -> str:
    """Bytes for people: ``512 B``, ``1.5 KB``, ``3.2 MB``."""
    if n is None:
        return NONE
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # unreachable


STATUS_STYLES = {
    "Pending": "dim",
    "Starting": "cyan",
    "Running": "blue",
    "Stopping": "yellow",
    "Completed": "green",
    "Failed": "red",
    "Stopped": "yellow",
    "InService": "green",
    "Deleting": "yellow",
}


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status, ""))
