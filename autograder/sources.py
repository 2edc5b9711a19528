"""Keep the exercise notebooks' solutions identical to the cvprep package.

A reference solution exists once, in ``cvprep``. The nbgrader source notebooks under
``exercises/`` mark two kinds of cells with a ``cvprep`` entry in their metadata:

* ``{"solution_from": "cvprep.conv:conv2d_loops"}`` on a solution cell: the code
  between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` is the body of that
  function (everything after its docstring). The notebook keeps its own ``def`` line
  and docstring, written for the learner, but must use the same parameter names.
* ``{"provided": ["cvprep._validation:check_int", ...], "imports": [...]}`` on a
  read-only cell of helpers the learner may call: its whole source is those imports
  followed by the listed functions and classes, verbatim.

``python -m autograder sync`` rewrites those regions from the package;
``python -m autograder sync --check`` (and the test suite) fails when they differ.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap
from dataclasses import dataclass
from pathlib import Path

import nbformat

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
PROVIDED_HEADER = (
    "# Provided helpers, copied verbatim from the cvprep package by `python -m autograder sync`.\n"
    "# Read them, call them, but do not change them."
)


def resolve(reference: str) -> object:
    """``"package.module:name"`` -> the object it names."""
    module_name, _, name = reference.partition(":")
    if not name:
        raise ValueError(f"a reference must look like 'package.module:name', got {reference!r}")
    return getattr(importlib.import_module(module_name), name)


def _function_node(source: str, what: str) -> ast.FunctionDef:
    tree = ast.parse(source)
    functions = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
    if len(functions) != 1:
        raise ValueError(f"{what} must define exactly one function, found {len(functions)}")
    return functions[0]


def function_body(function: object) -> str:
    """The body of a function after its docstring, dedented to column 0."""
    source = textwrap.dedent(inspect.getsource(function))
    node = _function_node(source, f"the source of {function.__qualname__}")
    has_docstring = isinstance(node.body[0], ast.Expr) and isinstance(getattr(node.body[0], "value", None), ast.Constant)
    first_line = node.body[0].end_lineno if has_docstring else node.body[0].lineno - 1
    lines = source.splitlines()[first_line:]
    return textwrap.dedent("\n".join(lines)).strip("\n")


def parameter_names(node: ast.FunctionDef) -> list[str]:
    args = node.args
    return [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]


def split_solution(source: str) -> tuple[str, str, str]:
    """A solution cell's source as (before BEGIN, the solution region, after END)."""
    if source.count(BEGIN) != 1 or source.count(END) != 1:
        raise ValueError(f"a solution cell needs exactly one {BEGIN!r} and one {END!r} line")
    head, rest = source.split(BEGIN)
    region, tail = rest.split(END)
    return head, region, tail


def solution_cell(source: str, reference: str) -> str:
    """Replace the solution region of a notebook cell by the body of ``reference``."""
    head, _, tail = split_solution(source)
    function = resolve(reference)
    indent = head[head.rfind("\n") + 1:]  # whitespace before the BEGIN marker
    notebook_params = parameter_names(_function_node(head + "pass", f"the solution cell for {reference}"))
    package_params = parameter_names(_function_node(textwrap.dedent(inspect.getsource(function)), reference))
    if notebook_params != package_params:
        raise ValueError(f"the notebook's parameters {notebook_params} differ from {reference}'s {package_params}")
    body = textwrap.indent(function_body(function), indent)
    return f"{head}{BEGIN}\n{body}\n{indent}{END}{tail}"


def provided_cell(references: list[str], imports: list[str]) -> str:
    """A helper cell: imports, then the source of every referenced object."""
    sources = [textwrap.dedent(inspect.getsource(resolve(r))).strip("\n") for r in references]
    return "\n".join([PROVIDED_HEADER, *imports]) + "\n\n\n" + "\n\n\n".join(sources)


@dataclass
class Change:
    notebook: Path
    cell_id: str
    reference: str


def sync_notebook(path: Path, write: bool = True) -> list[Change]:
    """Bring one notebook's marked cells in line with cvprep; return the cells that differed."""
    notebook = nbformat.read(path, as_version=4)
    changes = []
    for cell in notebook.cells:
        spec = cell.metadata.get("cvprep")
        if not spec:
            continue
        if "solution_from" in spec:
            expected = solution_cell(cell.source, spec["solution_from"])
            reference = spec["solution_from"]
        else:
            expected = provided_cell(spec["provided"], spec.get("imports", []))
            reference = ", ".join(spec["provided"])
        if cell.source != expected:
            changes.append(Change(path, cell.metadata.get("nbgrader", {}).get("grade_id", cell.get("id", "?")), reference))
            cell.source = expected
    if changes and write:
        nbformat.write(notebook, path)
    return changes


def sync_all(exercises: Path, write: bool = True) -> list[Change]:
    """Sync every source notebook under ``exercises/`` (one folder per assignment)."""
    changes = []
    for path in sorted(exercises.glob("*/*.ipynb")):
        changes += sync_notebook(path, write)
    return changes
