"""A notebook run as a training job: parameters injected the papermill way, executed
with nbclient in a fresh kernel, outputs streamed into the job's log as cells print.

The hyperparameters become a cell of assignments (``lr = 0.01``) inserted after the
cell tagged ``parameters`` (at the top when there is none), as papermill does, so the
notebook's own defaults are overridden. Each cell's printed output reaches the job's
log while it runs, so log metric definitions and `naiad jobs logs -f` work as for a
script; the kernel inherits the job's environment, so ``naiad.runtime`` and
``naiad.start_run()`` in a cell log to the job's run. A failing cell fails the job with
the cell named (``output/failure``). The executed notebook, with its outputs, is kept
in ``output/data/`` and, with an HTML rendering, among the run's artifacts
(``notebook/``). Needs the ``notebooks`` extra (nbclient, nbformat, ipykernel, nbconvert).
"""

import keyword
import re
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

from naiad.runtime.context import context

INJECTED_TAG = "injected-parameters"
PARAMETERS_TAG = "parameters"
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
EXTRA = "pip install 'naiad[notebooks]'"


def plain(text: str) -> str:
    """Text without the terminal colours IPython puts in tracebacks."""
    return _ANSI.sub("", text)


def parameters_source(values: dict[str, Any]) -> str:
    """The injected cell: one assignment per hyperparameter that names a variable."""
    lines = ["# Parameters (injected by Naiad from the job's hyperparameters)"]
    for name, value in values.items():
        if name.isidentifier() and not keyword.iskeyword(name):
            lines.append(f"{name} = {value!r}")
        else:
            lines.append(f"# {name!r} is not a Python name: read it from runtime.context()")
    return "\n".join(lines) + "\n"


def inject_parameters(nb: Any, values: dict[str, Any]) -> int:
    """Put the parameters cell in ``nb`` (replacing one injected before); returns its index."""
    import nbformat

    cells = nb.cells
    cells[:] = [c for c in cells if INJECTED_TAG not in c.get("metadata", {}).get("tags", [])]
    tagged = [i for i, c in enumerate(cells) if PARAMETERS_TAG in c.metadata.get("tags", [])]
    at = tagged[0] + 1 if tagged else 0
    cell = nbformat.v4.new_code_cell(parameters_source(values))
    cell.metadata["tags"] = [INJECTED_TAG]
    cells.insert(at, cell)
    return at


def _client_class() -> Any:
    from nbclient import NotebookClient

    class StreamingClient(NotebookClient):
        """Prints what each cell outputs as it comes, so the job's log is live."""

        def output(
            self, outs: list[Any], msg: dict[str, Any], display_id: str | None, cell_index: int
        ) -> Any:
            kind, content = msg["msg_type"], msg.get("content", {})
            if kind == "stream":
                target = sys.stderr if content.get("name") == "stderr" else sys.stdout
                target.write(content.get("text", ""))
                target.flush()
            elif kind in ("execute_result", "display_data"):
                text = content.get("data", {}).get("text/plain")
                if text and kind == "execute_result":
                    print(text, flush=True)
            return super().output(outs, msg, display_id, cell_index)

    return StreamingClient


def _first_line(source: str) -> str:
    for line in source.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            return line.strip()[:120]
    return ""


def _save(nb: Any, path: Path, ctx: Any, log: list[str]) -> None:
    """The executed notebook into output/data and, on rank 0, the run's artifacts with
    an HTML rendering; a failure here is logged, never the job's outcome."""
    import nbformat

    out = ctx.output_dir / path.name
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(out))
    if not ctx.is_main or ctx.tracking_run() is None:
        return
    try:
        from nbconvert import HTMLExporter

        html, _ = HTMLExporter().from_notebook_node(nb)
        rendered = out.with_suffix(".html")
        rendered.write_text(html)
        ctx.tracking_run().log_artifact(out, f"notebook/{out.name}")
        ctx.tracking_run().log_artifact(rendered, f"notebook/{rendered.name}")
        log.append(f"executed notebook saved as artifacts notebook/{out.name} and .html")
    except Exception as exc:
        log.append(f"could not save the executed notebook as an artifact: {exc}")


END_RUNS = "import naiad.sdk.run\nnaiad.sdk.run.end_open_runs()"


def _end_runs(client: Any, nb: Any) -> None:
    """In the kernel, before it is shut down (and killed if slow to go): every run's points
    to the server, as a script's exit does. The cell is not kept in the notebook."""
    import nbformat

    cell = nbformat.v4.new_code_cell(END_RUNS)
    nb.cells.append(cell)
    try:
        client.execute_cell(cell, len(nb.cells) - 1)
    except Exception as exc:
        print(f"[naiad] could not flush the runs' metrics from the kernel: {exc}", flush=True)
    finally:
        nb.cells.pop()


def run(path: Path) -> int:
    """Execute the notebook at ``path``; returns the process's exit code."""
    try:
        import nbformat
        from nbclient.exceptions import CellExecutionError
    except ImportError:
        _fail(f"Running a notebook needs nbclient, nbformat and ipykernel: {EXTRA}.")
        return 2
    ctx = context()
    try:
        nb = nbformat.read(str(path), as_version=4)
    except (OSError, ValueError, nbformat.ValidationError) as exc:
        _fail(f"{path.name} is not a notebook nbformat can read: {str(exc)[:300]}")
        return 2
    injected = inject_parameters(nb, dict(ctx.hyperparameters))
    where = "after the cell tagged 'parameters'" if injected else "at the top (none is tagged)"
    count = len(ctx.hyperparameters)
    print(f"[naiad] {path.name}: {count} parameter(s) injected {where}", flush=True)
    failed: dict[str, Any] = {}

    def on_error(cell: Any, cell_index: int, execute_reply: Any) -> None:
        failed.update(index=cell_index, source=cell.source)

    from jupyter_client.manager import KernelManager

    # IPC sockets in a private folder: nothing listens on TCP, nothing to encrypt
    sockets = tempfile.TemporaryDirectory(prefix="naiad-kernel-")
    manager = KernelManager(
        kernel_name="python3", transport="ipc", ip=str(Path(sockets.name) / "kernel")
    )
    client = _client_class()(
        nb,
        km=manager,
        timeout=None,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        on_cell_error=on_error,
        allow_errors=False,
    )
    notes: list[str] = []
    code = 0
    try:
        with client.setup_kernel():
            try:
                for index, cell in enumerate(nb.cells):
                    client.execute_cell(cell, index)
            finally:
                _end_runs(client, nb)
    except CellExecutionError as exc:
        index = failed.get("index", -1)
        number = index + (0 if index > injected else 1)  # from 1, without the injected cell
        error = plain(str(getattr(exc, "ename", "") or "Error"))
        value = plain(str(getattr(exc, "evalue", "") or ""))
        line = _first_line(failed.get("source", ""))
        reason = f"Cell {number} of {path.name} failed: {error}: {value}"
        print(plain(str(exc)), file=sys.stderr, flush=True)
        _fail(reason + (f" (in: {line})" if line else ""))
        code = 1
    except Exception as exc:  # the kernel died or could not start
        traceback.print_exc()
        _fail(f"{path.name} could not run: {type(exc).__name__}: {str(exc)[:300]}")
        code = 1
    finally:
        sockets.cleanup()
    _save(nb, path, ctx, notes)
    for note in notes:
        print(f"[naiad] {note}", flush=True)
    return code


def _fail(reason: str) -> None:
    print(f"[naiad] {reason}", file=sys.stderr, flush=True)
    context().write_failure(reason)


def main(argv: list[str] | None = None) -> int:
    """``python -m naiad.runtime.notebook_runner NOTEBOOK [args...]`` (args are ignored:
    the hyperparameters come from the job's SM_HPS, typed)."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: notebook_runner NOTEBOOK.ipynb", file=sys.stderr)
        return 2
    return run(Path(args[0]).resolve())


__all__ = ["inject_parameters", "main", "parameters_source", "run"]
