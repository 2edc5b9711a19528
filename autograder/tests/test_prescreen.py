"""Prescreening without running anything: finding, reading and rebuilding a submission."""

import json

import nbformat
import pytest

from autograder import batch, guard, prescreen

from corpus import filled


@pytest.fixture()
def release(released):
    return released[1]


def write(folder, name, text):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder


def test_a_single_renamed_notebook_is_found_but_two_are_ambiguous(tmp_path, release):
    folder = write(tmp_path / "a", "Convolution (1).ipynb", nbformat.writes(filled(release)))
    assert prescreen.prescreen(folder, release).flags == [prescreen.RENAMED]
    write(folder, "scratch.ipynb", "{}")
    assert prescreen.prescreen(folder, release).status == "missing"


@pytest.mark.parametrize("text, phrase", [
    ("", "is empty"),
    ("   \n", "is empty"),
    ('{"cells": [', "not valid notebook JSON"),
    ("[1, 2, 3]", "not a notebook"),
])
def test_unreadable_files_say_why(tmp_path, release, text, phrase):
    result = prescreen.prescreen(write(tmp_path / "s", release.name, text), release)
    assert result.status == "unreadable" and result.notebook is None
    assert phrase in " ".join(result.notes)


def test_bytes_that_are_not_utf8_are_unreadable(tmp_path, release):
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / release.name).write_bytes(b'{"cells": "\xff\xfe"}')
    result = prescreen.prescreen(folder, release)
    assert result.status == "unreadable" and "not UTF-8" in result.notes[0]


def test_a_deleted_solution_cell_comes_back_as_the_stub(tmp_path, release):
    notebook = filled(release)
    notebook.cells = [c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") != "max_pool2d"]
    result = prescreen.prescreen(write(tmp_path / "s", release.name, nbformat.writes(notebook)), release)
    assert result.flags == [prescreen.DELETED]
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in result.notebook.cells]
    restored = result.notebook.cells[ids.index("max_pool2d")]
    assert "raise NotImplementedError()" in restored.source
    assert ids.index("part3_prompt") < ids.index("max_pool2d") < ids.index("test_max_pool2d_default_stride")
    nbformat.validate(result.notebook)


def test_a_copied_graded_cell_keeps_its_code_but_loses_its_grade_id(tmp_path, release):
    notebook = filled(release)
    test = next(c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_conv2d_groups")
    notebook.cells.append(nbformat.from_dict(json.loads(json.dumps(test))))
    result = prescreen.prescreen(write(tmp_path / "s", release.name, nbformat.writes(notebook)), release)
    assert result.flags == [prescreen.DUPLICATE]
    ids = [c.metadata.get("nbgrader", {}).get("grade_id") for c in result.notebook.cells]
    assert ids.count("test_conv2d_groups") == 1
    assert result.notebook.cells[-1].source == test.source and "nbgrader" not in result.notebook.cells[-1].metadata
    assert len({c.id for c in result.notebook.cells}) == len(result.notebook.cells)


def test_an_untouched_release_passes_unflagged(tmp_path, release):
    result = prescreen.prescreen(write(tmp_path / "s", release.name, release.read_text()), release)
    assert (result.status, result.flags) == ("ok", [])


@pytest.mark.parametrize("source, expected", [
    ("import cvprep", True),
    ("from cvprep.conv import conv2d", True),
    ("import importlib\nm = importlib.import_module('cvprep.conv')", True),
    ("# I compared with cvprep while working\nx = 1", False),
    ("cvprep_like = 3\nmycvprep = 4", False),
    ("def f(:\n    import cvprep", True),  # a syntax error does not hide it
])
def test_reference_mentions_in_code_not_comments(source, expected):
    assert batch._mentions_reference(source) is expected


def test_outputs_are_capped_in_characters():
    text, cut = guard._cap("x" * 50, 10)
    assert cut and text.startswith("x" * 10) and "40 more characters" in text
    assert guard._cap("short", 10) == ("short", False)
