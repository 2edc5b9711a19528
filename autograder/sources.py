"""Keep the exercise notebooks' solutions identical to the cvprep package.

A reference solution exists once, in ``cvprep``. The nbgrader source notebooks under
``exercises/`` mark two kinds of cells with a ``cvprep`` entry in their metadata:

* ``{"solution_from": "cvprep.conv:conv2d_loops"}`` on a solution cell: the code
  between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` is the body of that
  function (everything after its docstring). The notebook keeps its own ``def`` line
  and docstring, written for the learner, but must use the same parameter names.
  A class is written one method at a time: ``{"solution_from":
  ["cvprep.blocks:Bottleneck.__init__", "cvprep.blocks:Bottleneck.forward"]}`` on a
  cell holding the learner's ``class Bottleneck`` with one solution region in each of
  those methods, in that order.
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
    """``"package.module:name"`` or ``"package.module:Class.method"`` -> the object it names."""
    module_name, _, name = reference.partition(":")
    if not name:
        raise ValueError(f"a reference must look like 'package.module:name', got {reference!r}")
    found = importlib.import_module(module_name)
    for attribute in name.split("."):
        found = getattr(found, attribute)
    return found


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


def split_solutions(source: str) -> tuple[list[str], list[str]]:
    """A solution cell's source as the text outside its solution regions, and the regions.

    ``source`` is ``outside[0] + BEGIN + regions[0] + END + outside[1] + ...``: one more
    piece of outside text than there are regions.
    """
    outside, regions, rest = [], [], source
    while BEGIN in rest or END in rest:
        head, begin, rest = rest.partition(BEGIN)
        region, end, rest = rest.partition(END)
        if not begin or not end or END in head or BEGIN in region:
            raise ValueError(f"a solution cell's {BEGIN!r} and {END!r} lines must come in pairs, in that order")
        outside.append(head)
        regions.append(region)
    return [*outside, rest], regions


def split_solution(source: str) -> tuple[str, str, str]:
    """A one-region solution cell's source as (before BEGIN, the solution region, after END)."""
    outside, regions = split_solutions(source)
    if len(regions) != 1:
        raise ValueError(f"a solution cell needs exactly one {BEGIN!r} and one {END!r} line")
    return outside[0], regions[0], outside[1]


def _enclosing_functions(outside: list[str]) -> list[ast.FunctionDef]:
    """The innermost ``def`` around each solution region of a cell (regions stubbed with ``pass``)."""
    skeleton, region_lines = "", []
    for head in outside[:-1]:
        skeleton += head + "pass"
        region_lines.append(skeleton.count("\n") + 1)
    skeleton += outside[-1]
    functions = [node for node in ast.walk(ast.parse(skeleton)) if isinstance(node, ast.FunctionDef)]
    enclosing = []
    for line in region_lines:
        around = [f for f in functions if f.lineno < line <= f.end_lineno]
        if not around:
            raise ValueError(f"the solution region on line {line} of the cell is not inside a def")
        enclosing.append(max(around, key=lambda f: f.lineno))
    return enclosing


def solution_cell(source: str, reference: str | list[str]) -> str:
    """Replace the solution regions of a notebook cell by the bodies of ``reference``.

    ``reference`` names a function, or lists one function or method per solution region.
    """
    references = [reference] if isinstance(reference, str) else list(reference)
    outside, regions = split_solutions(source)
    if len(regions) != len(references) or not regions:
        if len(references) == 1:
            raise ValueError(f"a solution cell needs exactly one {BEGIN!r} and one {END!r} line")
        raise ValueError(f"a solution cell for {len(references)} references needs {len(references)} "
                         f"solution regions, one per reference in order; found {len(regions)}")
    pieces = [outside[0]]
    for head, function_node, ref, tail in zip(outside, _enclosing_functions(outside), references, outside[1:]):
        function = resolve(ref)
        if "." in ref.partition(":")[2] and function_node.name != function.__name__:  # a method: its name is its API
            raise ValueError(f"the solution region in def {function_node.name} is filled from {ref}: "
                             "list the methods in the order of the cell's solution regions")
        indent = head[head.rfind("\n") + 1:]  # whitespace before the BEGIN marker
        notebook_params = parameter_names(function_node)
        package_params = parameter_names(_function_node(textwrap.dedent(inspect.getsource(function)), ref))
        if notebook_params != package_params:
            raise ValueError(f"the notebook's parameters {notebook_params} differ from {ref}'s {package_params}")
        body = textwrap.indent(function_body(function), indent)
        pieces.append(f"{BEGIN}\n{body}\n{indent}{END}{tail}")
    return "".join(pieces)


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
            reference = reference if isinstance(reference, str) else ", ".join(reference)
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
