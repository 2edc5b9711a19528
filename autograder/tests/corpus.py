"""Sample submissions of exercise 01: what a real class hands in, and what each must score.

Every submission is built from the released notebook (what students get) and the
reference solutions (the source notebook's solution regions, themselves checked against
``cvprep``), then broken the way students break things. ``CASES`` pairs each with the
row it must get in grades.csv. Scores are worked out by hand from the exercise's parts:
conv_output_size 2 points (2 tests), conv2d 4 (4 tests), max_pool2d 2, receptive_field 2.
"""

from __future__ import annotations

import json
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import nbformat

from autograder import sources

from assignment import ASSIGNMENT, SOURCE
from assignment import MISTAKES as ALL_MISTAKES

PARTS = {  # solution cell -> its grade cells
    "conv_output_size": ["test_conv_output_size_formula", "test_conv_output_size_errors"],
    "conv2d": ["test_conv2d_single_channel", "test_conv2d_channels", "test_conv2d_geometry", "test_conv2d_groups"],
    "max_pool2d": ["test_max_pool2d_default_stride", "test_max_pool2d_geometry"],
    "receptive_field": ["test_receptive_field_stride_one", "test_receptive_field_any"],
}

# Plausible mistakes, as edits of the reference body: (text to replace, replacement).
MISTAKES = ALL_MISTAKES[ASSIGNMENT]

# nbgrader's stub, at the indentation of the solution region it replaced
STUB = re.compile(r"^(?P<indent>[ \t]*)# YOUR CODE HERE\n(?P=indent)raise NotImplementedError\(\)", re.MULTILINE)


def grade_id(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def solutions(source_notebook) -> dict[str, list[str]]:
    """Solution cell -> its solution regions (one per function, or per method of a class), indented."""
    return {grade_id(c): sources.split_solutions(c.source)[1] for c in source_notebook.cells
            if c.metadata.get("nbgrader", {}).get("solution")}


def filled(release_path: Path, broken_part: str | None = None, bodies: dict[str, str] | None = None,
           source: Path = SOURCE):
    """The released notebook with every solution filled in, as a student would; one part possibly wrong.

    The solutions come from ``source``, the assignment's source notebook; ``broken_part``
    gets the assignment's mistake for that solution cell (assignment.MISTAKES).
    """
    student = nbformat.read(release_path, as_version=4)
    reference = solutions(nbformat.read(source, as_version=4))
    for cell in student.cells:
        part = grade_id(cell)
        if part in reference:
            regions = reference[part]
            if bodies and part in bodies:  # written flush left; a function's body is indented
                regions = [textwrap.indent(bodies[part], "    ")]
            if part == broken_part:
                old, new = ALL_MISTAKES[source.parent.name][part]
                hits = [i for i, region in enumerate(regions) if old in region]
                assert len(hits) == 1, f"the mistake for {part} no longer applies to the reference"
                regions[hits[0]] = regions[hits[0]].replace(old, new)
            assert len(STUB.findall(cell.source)) == len(regions), f"{part}: one stub per solution region"
            for region in regions:
                body = region.strip("\n").rstrip()
                cell.source = STUB.sub(lambda _, body=body: body, cell.source, count=1)  # a function: no escapes
            assert "NotImplementedError" not in cell.source
    return student


def cell_index(notebook, wanted: str) -> int:
    return next(i for i, c in enumerate(notebook.cells) if grade_id(c) == wanted)


def add_cell_after(notebook, after: str, source: str):
    notebook.cells.insert(cell_index(notebook, after) + 1, nbformat.v4.new_code_cell(source))
    return notebook


# ---------------------------------------------------------------- the broken submissions
# Each takes the release path and returns notebook JSON text (or None: no file at all).


def correct(release, **_):
    return filled(release)


def one_part_wrong(release, **_):
    return filled(release, broken_part="conv2d")


def raises(release, **_):
    return filled(release, bodies={"receptive_field": 'raise ValueError("I gave up on this part")'})


def syntax_error(release, **_):
    return filled(release, bodies={"max_pool2d": "return x.max(axis=(2, 3)"})


def top_level_infinite_loop(release, **_):
    return add_cell_after(filled(release), "test_conv_output_size_errors", "while True:\n    pass")


def loop_ignoring_sigint(release, **_):
    loop = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"
    return add_cell_after(filled(release), "test_conv2d_groups", loop)


def deleted_test_cell(release, **_):
    notebook = filled(release)
    del notebook.cells[cell_index(notebook, "test_conv2d_groups")]
    return notebook


def edited_test_cell(release, **_):
    notebook = filled(release, broken_part="max_pool2d")  # fails both max_pool2d tests...
    for wanted in PARTS["max_pool2d"]:
        notebook.cells[cell_index(notebook, wanted)].source = "pass  # nothing to see here"  # ...unless they vanish
    return notebook


def metadata_stripped(release, **_):
    notebook = filled(release)
    for cell in notebook.cells:
        cell.metadata = {}
    return notebook


def metadata_and_ids_stripped(release, **_):
    notebook = json.loads(nbformat.writes(metadata_stripped(release)))
    notebook["nbformat_minor"] = 4
    for cell in notebook["cells"]:
        cell.pop("id", None)
    return json.dumps(notebook)


def duplicated_graded_cells(release, **_):
    notebook = filled(release)
    for wanted in ("conv2d", "test_conv2d_groups"):
        copy = nbformat.from_dict(json.loads(json.dumps(notebook.cells[cell_index(notebook, wanted)])))
        copy.pop("id", None)
        notebook.cells.insert(cell_index(notebook, wanted) + 1, copy)
    return notebook


def truncated_json(release, **_):
    text = nbformat.writes(filled(release))
    return text[: len(text) // 2]


def empty_file(release, **_):
    return ""


def missing_notebook(release, **_):
    return None


def huge_output(release, **_):
    return add_cell_after(filled(release), "test_receptive_field_any", 'print("x" * 30_000_000)')


def os_exit(release, **_):
    return add_cell_after(filled(release), "test_max_pool2d_geometry", "import os\nos._exit(3)")


def memory_hog(release, **_):
    return add_cell_after(filled(release), "test_conv2d_groups", "hog = bytearray(20 * 2**30)  # 20 GB")


def imports_reference(release, **_):
    body = ("from cvprep.conv import conv2d as reference\n"
            "return reference(x, weight, bias, stride, padding, dilation, groups)")
    return filled(release, bodies={"conv2d": body})


def imports_reference_in_disguise(release, **_):
    # No "cvprep" in the code: only the guard inside the kernel can see this one.
    body = ('name = "".join(["cv", "prep", ".conv"])\n'
            "module = __import__(name, fromlist=['max_pool2d'])\n"
            "return module.max_pool2d(x, kernel_size, stride, padding)")
    return filled(release, bodies={"max_pool2d": body})


def reads_hidden_tests(release, source=SOURCE, gradebook=Path("gradebook.db"), **_):
    """A cell of the student's own that reads the hidden tests and writes into the gradebook."""
    attack = (
        "import pathlib\n"
        f"for target in [{str(source)!r}, {str(gradebook)!r}]:\n"
        "    try:\n"
        "        print('read', len(pathlib.Path(target).read_bytes()), 'bytes of', target)\n"
        "    except OSError as error:\n"
        "        print('blocked reading', target, type(error).__name__)\n"
        "try:\n"
        f"    pathlib.Path({str(gradebook)!r}).write_text('gone')\n"
        "    print('wrote the gradebook')\n"
        "except OSError as error:\n"
        "    print('blocked writing', type(error).__name__)\n"
    )
    return add_cell_after(filled(release), "submit", attack)


def renamed_notebook(release, **_):
    return filled(release)


@dataclass(frozen=True)
class Case:
    build: object
    total: float
    status: str = "graded"
    flags: tuple[str, ...] = ()
    lost: tuple[str, ...] = ()  # grade ids that must score 0 (all others full marks), when graded
    filename: str = SOURCE.name
    note: str = ""  # a phrase the reason must contain


def tests_of(*parts):
    return tuple(g for p in parts for g in PARTS[p])


CASES = {
    "correct": Case(correct, 10),
    "one_part_wrong": Case(one_part_wrong, 6, lost=tests_of("conv2d")),
    "raises": Case(raises, 8, lost=tests_of("receptive_field")),
    "syntax_error": Case(syntax_error, 8, lost=tests_of("max_pool2d")),
    "top_level_infinite_loop": Case(top_level_infinite_loop, 10, flags=("timeout",)),
    # the kernel is stopped in the cell after conv2d's tests: parts 1 and 2 count (2 + 4)
    "loop_ignoring_sigint": Case(loop_ignoring_sigint, 6, flags=("timeout",), lost=tests_of("max_pool2d", "receptive_field")),
    "deleted_test_cell": Case(deleted_test_cell, 10, flags=("deleted-cell",), note="test_conv2d_groups"),
    "edited_test_cell": Case(edited_test_cell, 8, flags=("tampered",), lost=tests_of("max_pool2d"),
                             note="test_max_pool2d_geometry"),
    "metadata_stripped": Case(metadata_stripped, 10, flags=("metadata-restored",)),
    "metadata_and_ids_stripped": Case(metadata_and_ids_stripped, 10, flags=("metadata-restored", "deleted-cell")),
    "duplicated_graded_cells": Case(duplicated_graded_cells, 10, flags=("duplicate-cell",)),
    "truncated_json": Case(truncated_json, 0, status="unreadable", note="not valid notebook JSON"),
    "empty_file": Case(empty_file, 0, status="unreadable", note="empty"),
    "missing_notebook": Case(missing_notebook, 0, status="missing", note="no convolution.ipynb"),
    "huge_output": Case(huge_output, 10, flags=("output-cut",)),
    # os._exit after max_pool2d's tests: parts 1-3 count (2 + 4 + 2)
    "os_exit": Case(os_exit, 8, flags=("kernel-died",), lost=tests_of("receptive_field")),
    "memory_hog": Case(memory_hog, 10, flags=("memory-limit",)),
    "imports_reference": Case(imports_reference, 6, flags=("uses-reference",), lost=tests_of("conv2d")),
    "imports_reference_in_disguise": Case(imports_reference_in_disguise, 8, flags=("uses-reference",),
                                          lost=tests_of("max_pool2d")),
    # a cell of the student's own: it cannot be tied to one part, so every part scores 0
    "reads_hidden_tests": Case(reads_hidden_tests, 0, flags=("reads-outside",), lost=tests_of(*PARTS)),
    "renamed_notebook": Case(renamed_notebook, 10, flags=("renamed-notebook",), filename="convolution (1).ipynb"),
}


def write_corpus(release: Path, folder: Path, assignment: str, names=None, **context) -> Path:
    """Write the submissions in nbgrader's layout: folder/<student>/<assignment>/<notebook>.

    ``context`` reaches the builders (the attack needs the paths of the source and gradebook).
    """
    for name in names or CASES:
        case = CASES[name]
        target = folder / name / assignment
        target.mkdir(parents=True, exist_ok=True)
        built = case.build(release, **context)
        if built is None:
            continue
        text = built if isinstance(built, str) else nbformat.writes(built)
        (target / case.filename).write_text(text)
    return folder
