"""The exercise notebooks' solutions are the cvprep code, and the sync tool keeps them so."""

import textwrap

import nbformat
import pytest

from autograder import course, sources
from cvprep import conv


def test_exercise_notebooks_match_cvprep():
    changes = sources.sync_all(course.EXERCISES, write=False)
    assert changes == [], "run `python -m autograder sync`: " + "; ".join(f"{c.cell_id} <- {c.reference}" for c in changes)


def test_function_body_starts_after_the_docstring():
    body = sources.function_body(conv.conv_output_size)
    assert body.startswith('size = check_int(size, "size", 1)')
    assert body.endswith("return (size + 2 * padding - span) // stride + 1")
    assert '"""' not in body


def test_solution_cell_is_filled_with_the_body():
    cell = textwrap.dedent('''
        def conv_output_size(size, kernel_size, stride=1, padding=0, dilation=1):
            """Learner-facing docstring."""
            ### BEGIN SOLUTION
            stale code
            ### END SOLUTION
    ''').strip()
    filled = sources.solution_cell(cell, "cvprep.conv:conv_output_size")
    assert "stale code" not in filled
    assert '    size = check_int(size, "size", 1)' in filled
    assert filled.startswith("def conv_output_size(") and filled.rstrip().endswith("### END SOLUTION")
    namespace = {"check_int": conv.check_int, "check_window_fits": conv.check_window_fits}
    exec(filled.replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", ""), namespace)  # noqa: S102
    assert namespace["conv_output_size"](224, 7, 2, 3) == 112


def test_solution_cell_refuses_different_parameters():
    cell = 'def conv_output_size(n, k):\n    """x"""\n    ### BEGIN SOLUTION\n    ### END SOLUTION'
    with pytest.raises(ValueError, match=r"parameters \['n', 'k'\] differ from"):
        sources.solution_cell(cell, "cvprep.conv:conv_output_size")


def test_solution_cell_needs_one_region():
    with pytest.raises(ValueError, match="exactly one"):
        sources.solution_cell('def f():\n    """x"""\n', "cvprep.conv:conv_output_size")


def test_sync_rewrites_a_stale_notebook(tmp_path, source_notebook):
    stale = nbformat.from_dict(source_notebook)
    for cell in stale.cells:
        if cell.metadata.get("cvprep", {}).get("solution_from"):
            cell.source = cell.source.replace("return", "return  # edited by hand", 1)
    path = tmp_path / "stale.ipynb"
    nbformat.write(stale, path)
    changed = sources.sync_notebook(path)
    assert {c.cell_id for c in changed} == {"conv_output_size", "conv2d", "max_pool2d", "receptive_field"}
    assert sources.sync_notebook(path) == []  # now in sync
    assert nbformat.read(path, as_version=4).cells == source_notebook.cells


def test_cli_check_reports_in_sync(capsys):
    from autograder.__main__ import main

    assert main(["sync", "--check"]) == 0
    assert "match cvprep" in capsys.readouterr().out
