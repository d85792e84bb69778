"""The papermill-style parameters cell a notebook job gets, without a kernel."""

import nbformat

from naiad.runtime.notebooks import INJECTED_TAG, inject_parameters, parameters_source, plain


def notebook(*cells: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = list(cells)
    return nb


def tagged(source: str, tag: str) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = [tag]
    return cell


def test_injected_after_the_parameters_cell_overriding_its_defaults() -> None:
    nb = notebook(
        nbformat.v4.new_markdown_cell("# title"),
        tagged("lr = 0.5", "parameters"),
        nbformat.v4.new_code_cell("print(lr)"),
    )
    at = inject_parameters(nb, {"lr": 0.1, "name": "a'b", "flag": True, "none": None})
    assert at == 2 and nb.cells[2].metadata["tags"] == [INJECTED_TAG]
    scope: dict[str, object] = {}
    exec(nb.cells[1].source + "\n" + nb.cells[2].source, scope)  # defaults, then the job's
    assert (scope["lr"], scope["name"], scope["flag"], scope["none"]) == (0.1, "a'b", True, None)


def test_without_a_parameters_cell_at_the_top_and_a_rerun_replaces_it() -> None:
    nb = notebook(nbformat.v4.new_code_cell("x = 1"))
    assert inject_parameters(nb, {"lr": 1}) == 0
    assert inject_parameters(nb, {"lr": 2}) == 0  # an executed copy run again
    injected = [c for c in nb.cells if INJECTED_TAG in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "lr = 2" in injected[0].source and len(nb.cells) == 2


def test_names_python_cannot_assign_are_left_as_comments() -> None:
    source = parameters_source({"learning-rate": 0.1, "class": 3, "ok_name": 1})
    assert "ok_name = 1" in source
    assert "# 'learning-rate' is not a Python name" in source
    assert "# 'class' is not a Python name" in source
    compile(source, "<cell>", "exec")  # still a valid cell


def test_terminal_colours_leave_tracebacks() -> None:
    assert plain("\x1b[0;31mValueError\x1b[0m: boom") == "ValueError: boom"
