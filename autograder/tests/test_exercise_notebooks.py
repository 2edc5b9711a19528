"""House rules for every nbgrader source notebook under exercises/."""

import ast

import nbformat
import pytest

from autograder import course

NOTEBOOKS = sorted(course.EXERCISES.glob("*/*.ipynb"))


def grade_cells(notebook):
    return [c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code"]


def imported_modules(source):
    """Every module an ``import`` or ``from ... import`` of ``source`` names."""
    modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


def solution_cells(notebook):
    return [c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("solution")]


@pytest.fixture(params=NOTEBOOKS, ids=lambda p: p.parent.name)
def notebook(request):
    return nbformat.read(request.param, as_version=4)


def test_there_is_an_exercise():
    assert [p.parent.name for p in NOTEBOOKS] == course.assignments() != []


def test_source_notebooks_carry_no_outputs(notebook):
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in notebook.cells if c.cell_type == "code")
    assert notebook.metadata["kernelspec"]["name"] == "python3"


def test_grade_ids_are_unique(notebook):
    ids = [c.metadata["nbgrader"]["grade_id"] for c in notebook.cells if "nbgrader" in c.metadata]
    assert len(ids) == len(set(ids))


def test_every_solution_comes_from_cvprep(notebook):
    assert solution_cells(notebook)
    for cell in solution_cells(notebook):
        assert cell.metadata.get("cvprep", {}).get("solution_from"), cell.metadata["nbgrader"]["grade_id"]


def test_grade_cells_follow_the_house_rules(notebook):
    for cell in grade_cells(notebook):
        grade_id = cell.metadata["nbgrader"]["grade_id"]
        tree = ast.parse(cell.source)
        first, last = tree.body[0], tree.body[-1]
        assert isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant), f"{grade_id}: open with a docstring title"
        # a trailing expression would be read by nbgrader as a partial-credit score
        assert not isinstance(last, ast.Expr) or isinstance(last.value, ast.Call), f"{grade_id}: end with a statement"
        assert cell.metadata["nbgrader"]["points"] > 0
        visible, _, hidden = cell.source.partition("### BEGIN HIDDEN TESTS")
        assert "assert" in visible, f"{grade_id}: needs a visible hand-worked test"
        hidden, end, _ = hidden.partition("### END HIDDEN TESTS")
        assert end, f"{grade_id}: needs hidden tests"
        oracles = imported_modules(hidden)
        assert {m for m in oracles if m.startswith("cvprep.")} <= {"cvprep.testing"}, \
            f"{grade_id}: hidden tests may use the reference package only through cvprep.testing"
        assert "from cvprep.testing import check_" in hidden or {m.split(".")[0] for m in oracles} & {"torch", "torchvision"}, \
            f"{grade_id}: needs a hidden test against an oracle: a cvprep.testing check, or torch and torchvision themselves"
        assert "cvprep" not in visible, f"{grade_id}: visible tests must not need the reference package"
