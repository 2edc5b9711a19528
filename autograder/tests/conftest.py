"""Fixtures shared by the grading tests."""

from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from assignment import ASSIGNMENT, SOURCE, source_of
from autograder import course


@pytest.fixture(scope="session")
def source_notebook() -> nbformat.NotebookNode:
    return nbformat.read(SOURCE, as_version=4)


@pytest.fixture(scope="module")
def released(tmp_path_factory) -> tuple[course.Course, Path]:
    """A fresh course in a temporary folder with the assignment released (and its gradebook created)."""
    grader = course.Course(tmp_path_factory.mktemp("course"))
    return grader, grader.release(ASSIGNMENT) / SOURCE.name


@dataclass(frozen=True)
class Released:
    """One assignment released into a course of its own."""

    assignment: str
    source: Path  # the nbgrader source notebook
    notebook: nbformat.NotebookNode  # its contents
    grader: course.Course
    release: Path  # the student version


@pytest.fixture(scope="module", params=course.assignments())
def each_released(request, tmp_path_factory) -> Released:
    """Every assignment in turn, released into a fresh course (and its gradebook created)."""
    assignment = request.param
    source = source_of(assignment)
    grader = course.Course(tmp_path_factory.mktemp(f"course-{assignment}"))
    return Released(assignment, source, nbformat.read(source, as_version=4), grader,
                    grader.release(assignment) / source.name)
