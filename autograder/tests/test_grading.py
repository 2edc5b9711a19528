"""Grading end to end with nbgrader, for every assignment: the release, a perfect
submission, an untouched one, and submissions with exactly one part wrong; and the
course's reading of nbgrader's gradebook schema."""

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder import batch, course, sources

from assignment import ALSO_FAILS, MAX_SCORE, MISTAKES
from corpus import STUB, filled


def points(notebook):
    return {c.metadata["nbgrader"]["grade_id"]: c.metadata["nbgrader"]["points"]
            for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade")}


def solution_regions(cell_source):
    return sources.split_solutions(cell_source)[1]


def grade(released, notebook, student, tmp_path):
    path = tmp_path / f"{student}.ipynb"
    nbformat.write(notebook, path)
    released.grader.submit(released.assignment, student, [path.rename(path.with_name(released.source.name))])
    return {g.grade_id: g.score for g in released.grader.autograde(released.assignment, student)}


def test_every_part_of_every_assignment_has_a_mistake():
    for assignment in course.assignments():
        parts = {p.solution for p in batch.Exercise(assignment).parts}
        assert set(MISTAKES.get(assignment, {})) == parts, f"{assignment}: add one mistake per part to assignment.py"
        assert set(ALSO_FAILS.get(assignment, {})) <= parts


def test_release_holds_no_solution_and_no_hidden_test(each_released):
    source_notebook = each_released.notebook
    text = each_released.release.read_text()
    release = nbformat.read(each_released.release, as_version=4)
    assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text and "cvprep.testing" not in text
    assert '"cvprep"' not in text  # the metadata naming the reference functions is gone too
    release_lines = {line.strip() for cell in release.cells for line in cell.source.splitlines()}
    given_lines = {line.strip() for cell in source_notebook.cells if not cell.metadata.get("nbgrader", {}).get("solution")
                   for line in cell.source.splitlines()}  # e.g. the provided helpers
    regions = 0
    for cell in source_notebook.cells:
        if cell.metadata.get("nbgrader", {}).get("solution"):
            for region in solution_regions(cell.source):
                regions += 1
                solution_lines = {line.strip() for line in region.splitlines() if line.strip()}
                assert solution_lines
                leaked = (solution_lines & release_lines) - given_lines
                assert not leaked, f"solution of {cell.metadata['nbgrader']['grade_id']} leaked: {leaked}"
    stubs = [c.source for c in release.cells if c.metadata.get("nbgrader", {}).get("solution")]
    assert len(stubs) == len(MISTAKES[each_released.assignment])
    assert sum(len(STUB.findall(s)) for s in stubs) == regions  # one stub where each solution region was


def test_source_notebook_scores_full_marks(each_released, tmp_path):
    scores = grade(each_released, each_released.notebook, "reference", tmp_path)
    assert scores == {k: float(v) for k, v in points(each_released.notebook).items()}
    assert sum(scores.values()) == MAX_SCORE[each_released.assignment]


def test_untouched_release_scores_zero(each_released, tmp_path):
    scores = grade(each_released, nbformat.read(each_released.release, as_version=4), "untouched", tmp_path)
    assert set(scores) == set(points(each_released.notebook))
    assert all(score == 0 for score in scores.values())


def test_a_filled_release_scores_full_marks(each_released, tmp_path):
    scores = grade(each_released, filled(each_released.release, source=each_released.source), "diligent", tmp_path)
    assert sum(scores.values()) == MAX_SCORE[each_released.assignment]


@pytest.mark.parametrize("each_released, part",
                         [(assignment, part) for assignment in course.assignments() for part in MISTAKES[assignment]],
                         indirect=["each_released"])
def test_one_wrong_part_loses_exactly_its_points(each_released, tmp_path, part):
    notebook = filled(each_released.release, broken_part=part, source=each_released.source)
    scores = grade(each_released, notebook, f"wrong_{part}", tmp_path)
    full = points(each_released.notebook)
    lost = {grade_id for grade_id, score in scores.items() if score < full[grade_id]}
    own = set(batch.Exercise(each_released.assignment).tests_of(part))
    assert own
    assert lost == own | set(ALSO_FAILS.get(each_released.assignment, {}).get(part, []))
    assert all(scores[grade_id] == 0 for grade_id in lost)


def test_the_batch_grader_gives_a_filled_release_full_marks(each_released, tmp_path):
    # Through `python -m autograder grade`'s path: the sandbox with its default limits (a kernel
    # that imports torch needs more address space than one that imports numpy), and the guard.
    folder = tmp_path / "submitted" / "diligent" / each_released.assignment
    folder.mkdir(parents=True)
    nbformat.write(filled(each_released.release, source=each_released.source), folder / each_released.source.name)
    [result] = batch.grade(each_released.assignment, tmp_path / "submitted", tmp_path / "grader",
                           progress=lambda _: None)
    assert result.status in ("graded", "graded-unisolated"), result
    assert set(result.flags) <= {batch.UNISOLATED}, result
    assert sum(result.scores.values()) == MAX_SCORE[each_released.assignment], result


def test_the_gradebook_schema_version_matches_alembics_command(tmp_path):
    # nbgrader's own way (the `alembic heads` command) is the oracle for the in-process read.
    from nbgrader.dbutil import _temp_alembic_ini

    with _temp_alembic_ini(f"sqlite:///{tmp_path / 'gradebook.db'}") as ini:
        output = subprocess.run([str(Path(sys.executable).with_name("alembic")), "-c", ini, "heads"],
                                capture_output=True, text=True, check=True).stdout
    assert course.alembic_head() == output.split()[0]
