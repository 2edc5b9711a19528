"""Fixtures shared by the grading tests."""

from pathlib import Path

import nbformat
import pytest

from assignment import ASSIGNMENT, SOURCE
from autograder import course


@pytest.fixture(scope="session")
def source_notebook() -> nbformat.NotebookNode:
    return nbformat.read(SOURCE, as_version=4)


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> tuple[course.Course, Path]:
    """A fresh course in a temporary folder with the assignment released (and its gradebook created)."""
    grader = course.Course(tmp_path_factory.mktemp("course"))
    return grader, grader.release(ASSIGNMENT) / SOURCE.name
