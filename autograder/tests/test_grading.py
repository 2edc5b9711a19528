"""Grading end to end with nbgrader: the release, a perfect submission, an untouched one,
and submissions with exactly one part wrong; and the course's reading of nbgrader's
gradebook schema."""

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder import course, sources

from assignment import ASSIGNMENT, SOURCE
from corpus import PARTS, filled



def points(notebook):
    return {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"]
            for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade")}


def solution_region(cell_source):
    return sources.split_solution(cell_source)[1]


def grade(grader, notebook, student, tmp_path):
    path = tmp_path / f"{student}.ipynb"
    nbformat.write(notebook, path)
    grader.submit(ASSIGNMENT, student, [path.rename(path.with_name(SOURCE.name))])
    return {g.grade_id: g.score for g in grader.autograde(ASSIGNMENT, student)}


def test_release_holds_no_solution_and_no_hidden_test(released, source_notebook):
    _, release_path = released
    text = release_path.read_text()
    release = nbformat.read(release_path, as_version=4)
    assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text and "cvprep.testing" not in text
    assert '"cvprep"' not in text  # the metadata naming the reference functions is gone too
    release_lines = {line.strip() for cell in release.cells for line in cell.source.splitlines()}
    given_lines = {line.strip() for cell in source_notebook.cells if not cell.metadata.get("nbgrader", {}).get("solution")
                   for line in cell.source.splitlines()}  # e.g. the provided helpers
    for cell in source_notebook.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            solution_lines = {line.strip() for line in solution_region(cell.source).splitlines() if line.strip()}
            assert solution_lines
            leaked = (solution_lines & release_lines) - given_lines
            assert not leaked, f"solution of {cell.metadata['nbgrader']['grade_id']} leaked: {leaked}"
    stubs = [c.source for c in release.cells if c.metadata.get("nbgrader", {}).get("solution")]
    assert len(stubs) == len(PARTS) and all("raise NotImplementedError()" in s for s in stubs)


def test_source_notebook_scores_full_marks(released, source_notebook, tmp_path):
    grader, _ = released
    scores = grade(grader, source_notebook, "reference", tmp_path)
    assert scores == {k: float(v) for k, v in points(source_notebook).items()}
    assert sum(scores.values()) == 10


def test_untouched_release_scores_zero(released, source_notebook, tmp_path):
    grader, release_path = released
    scores = grade(grader, nbformat.read(release_path, as_version=4), "untouched", tmp_path)
    assert set(scores) == set(points(source_notebook))
    assert all(score == 0 for score in scores.values())


def test_a_filled_release_scores_full_marks(released, source_notebook, tmp_path):
    grader, release_path = released
    scores = grade(grader, filled(release_path), "diligent", tmp_path)
    assert sum(scores.values()) == sum(points(source_notebook).values())


@pytest.mark.parametrize("part", list(PARTS))
def test_one_wrong_part_loses_exactly_its_points(released, source_notebook, tmp_path, part):
    grader, release_path = released
    scores = grade(grader, filled(release_path, broken_part=part), f"wrong_{part}", tmp_path)
    full = points(source_notebook)
    lost = {grade_id for grade_id, score in scores.items() if score < full[grade_id]}
    assert lost == set(PARTS[part])
    assert all(scores[grade_id] == 0 for grade_id in PARTS[part])


def test_the_gradebook_schema_version_matches_alembics_command(tmp_path):
    # nbgrader's own way (the `alembic heads` command) is the oracle for the in-process read.
    from nbgrader.dbutil import _temp_alembic_ini

    with _temp_alembic_ini(f"sqlite:///{tmp_path / 'gradebook.db'}") as ini:
        output = subprocess.run([str(Path(sys.executable).with_name("alembic")), "-c", ini, "heads"],
                                capture_output=True, text=True, check=True).stdout
    assert course.alembic_head() == output.split()[0]
