"""Grading a class with ``python -m autograder grade``: the corpus of sample submissions
(corpus.py) graded in one batch, then the guarantees around it: isolation, feedback,
idempotent and resumable regrading, parallel equals serial."""

import csv
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import pytest

from autograder import batch, course, sandbox

from assignment import ASSIGNMENT, SOURCE
from corpus import CASES, PARTS, write_corpus

TIMEOUT = 3  # seconds per cell: the loops in the corpus hit it, everything else is far below
ALL_TESTS = [g for tests in PARTS.values() for g in tests]
ISOLATED = sandbox.plan([course.REPO], Path(tempfile.mkdtemp(prefix="probe-")))[1] is None


def run_cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "autograder", *args], capture_output=True, text=True, **kwargs)


def read_csv(path):
    with open(path, newline="") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    out = tmp_path_factory.mktemp("release")
    assert run_cli("release", ASSIGNMENT, "--out", str(out)).returncode == 0
    return out / ASSIGNMENT / SOURCE.name


@pytest.fixture(scope="module")
def graded(tmp_path_factory, release):
    """The whole corpus graded once through the command line, two submissions at a time."""
    root = tmp_path_factory.mktemp("class")
    submissions, out = root / "submitted", root / "grader"
    write_corpus(release, submissions, ASSIGNMENT, gradebook=out / "nbgrader" / "gradebook.db")
    (submissions / "no_folder_at_all").mkdir()  # enrolled, never handed anything in
    result = run_cli("grade", ASSIGNMENT, "--submissions", str(submissions), "--out", str(out),
                     "--jobs", "2", "--timeout", str(TIMEOUT))
    assert result.returncode == 0, result.stdout + result.stderr
    return submissions, out, result


@pytest.mark.parametrize("student", list(CASES))
def test_every_sample_submission_gets_its_score_status_and_flags(graded, student):
    _, out, _ = graded
    case = CASES[student]
    row = read_csv(out / "grades.csv")[student]
    assert float(row["total"]) == case.total, row
    assert row["max"] == "10"
    expected_status = case.status if case.status != "graded" or ISOLATED else "graded-unisolated"
    assert row["status"] == expected_status, row
    assert set(case.flags) <= set(row["flags"].split(";")) - {""}, row
    unexpected = {"uses-reference", "reads-outside", "tampered", "timeout", "kernel-died"} - set(case.flags)
    assert not unexpected & set(row["flags"].split(";")), row
    assert case.note in row["reason"], row
    if case.status == "graded":
        for grade_id in ALL_TESTS:
            assert float(row[grade_id]) == (0.0 if grade_id in case.lost else 1.0), (grade_id, row)


def test_a_student_with_no_folder_gets_a_missing_row(graded):
    _, out, _ = graded
    row = read_csv(out / "grades.csv")["no_folder_at_all"]
    assert (row["status"], row["total"]) == ("missing", "0")


def test_every_student_gets_a_feedback_page(graded):
    submissions, out, _ = graded
    for student in [p.name for p in submissions.iterdir()]:
        page = out / "feedback" / student / ASSIGNMENT / "convolution.html"
        assert page.stat().st_size > 0, student


def test_huge_output_is_capped_in_characters(graded):
    _, out, _ = graded
    normal = (out / "feedback" / "correct" / ASSIGNMENT / "convolution.html").stat().st_size
    huge = (out / "feedback" / "huge_output" / ASSIGNMENT / "convolution.html").stat().st_size
    # 30 million characters were printed on one line; the page grows by the cap, not by 30 MB
    assert huge < normal + 3 * batch.Options.max_output_chars


def test_feedback_names_the_failed_test_and_links_its_section(graded):
    _, out, _ = graded
    text = (out / "feedback" / "one_part_wrong" / ASSIGNMENT / "convolution.html").read_text()
    assert "Not passed: conv2d: one channel, one filter, stride 1, no padding" in text
    assert "AssertionError" in text
    assert "book/01-convolution/convolution.html" in text  # the page that teaches conv2d
    assert "Grader&#39;s summary: 6 / 10" in text or "Grader's summary: 6 / 10" in text


def test_feedback_sections_exist_in_the_book():
    import yaml

    toc = (course.REPO / "_toc.yml").read_text()
    exercise = batch.Exercise(ASSIGNMENT)
    assert {p.section for p in exercise.parts} == {"book/01-convolution/arithmetic", "book/01-convolution/convolution",
                                                   "book/01-convolution/pooling", "book/01-convolution/receptive-field"}
    for part in exercise.parts:
        assert f"file: {part.section}\n" in toc, part
    assert yaml.safe_load(toc)


@pytest.mark.skipif(not ISOLATED, reason="isolation needs the grader to run as root on Linux")
def test_student_code_cannot_read_the_sources_or_touch_the_gradebook(graded):
    _, out, _ = graded
    autograded = out / "nbgrader" / "autograded" / "reads_hidden_tests" / ASSIGNMENT / "convolution.ipynb"
    printed = "".join(o.get("text", "") for c in nbformat.read(autograded, as_version=4).cells
                      if c.cell_type == "code" for o in c.get("outputs", []))
    assert f"blocked reading {SOURCE}" in printed
    assert "blocked writing" in printed and "wrote the gradebook" not in printed
    assert "bytes of" not in printed
    with sqlite3.connect(out / "nbgrader" / "gradebook.db") as db:  # still a database, with everyone in it
        students = {row[0] for row in db.execute("select id from student")}
    assert "correct" in students and "reads_hidden_tests" in students


def test_regrading_unchanged_submissions_changes_nothing(graded):
    submissions, out, _ = graded
    before = (out / "grades.csv").read_bytes()
    result = run_cli("grade", ASSIGNMENT, "--submissions", str(submissions), "--out", str(out),
                     "--timeout", str(TIMEOUT))
    assert result.returncode == 0, result.stderr
    assert "grading 0" in result.stdout
    assert (out / "grades.csv").read_bytes() == before


def test_help_explains_every_command():
    result = run_cli("--help")
    for command in ("release", "grade", "feedback", "export", "workspace", "sync"):
        assert command in result.stdout
    assert "grades.csv" in run_cli("grade", "--help").stdout


def test_export_and_feedback_rebuild_from_the_gradebook(graded, tmp_path):
    _, out, _ = graded
    before = read_csv(out / "grades.csv")
    assert run_cli("export", ASSIGNMENT, "--out", str(out)).returncode == 0
    assert read_csv(out / "grades.csv") == before
    page = out / "feedback" / "one_part_wrong" / ASSIGNMENT / "convolution.html"
    page.unlink()
    result = run_cli("feedback", ASSIGNMENT, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "Not passed: conv2d" in page.read_text()


# ------------------------------------------------------------ one student, parallel, crashes

SUBSET = ["correct", "one_part_wrong", "raises", "syntax_error", "edited_test_cell", "imports_reference"]


def grade_subset(release, folder, jobs=1, gradebook=None):
    submissions = write_corpus(release, folder / "submitted", ASSIGNMENT, names=SUBSET)
    out = folder / "grader"
    batch.grade(ASSIGNMENT, submissions, out, jobs=jobs, options=batch.Options(timeout=TIMEOUT), progress=lambda _: None)
    return submissions, out


def test_serial_grading_matches_the_parallel_batch(graded, release, tmp_path):
    _, parallel_out, _ = graded
    _, out = grade_subset(release, tmp_path, jobs=1)
    serial = read_csv(out / "grades.csv")
    parallel = read_csv(parallel_out / "grades.csv")
    assert serial == {s: parallel[s] for s in SUBSET}


def test_changing_one_submission_regrades_only_that_row(release, tmp_path):
    submissions, out = grade_subset(release, tmp_path)
    before = read_csv(out / "grades.csv")
    mtimes = {p.name: p.stat().st_mtime_ns for p in (out / "results").glob("*.json")}
    fixed = submissions / "one_part_wrong" / ASSIGNMENT / SOURCE.name
    fixed.write_text((submissions / "correct" / ASSIGNMENT / SOURCE.name).read_text())
    lines = []
    batch.grade(ASSIGNMENT, submissions, out, options=batch.Options(timeout=TIMEOUT), progress=lines.append)
    after = read_csv(out / "grades.csv")
    assert after["one_part_wrong"]["total"] == "10" and before["one_part_wrong"]["total"] == "6"
    assert {s: r for s, r in after.items() if s != "one_part_wrong"} == \
           {s: r for s, r in before.items() if s != "one_part_wrong"}
    touched = {p.name for p in (out / "results").glob("*.json") if p.stat().st_mtime_ns != mtimes[p.name]}
    assert touched == {"one_part_wrong.json"}


def test_a_killed_batch_resumes_and_ends_consistent(release, tmp_path):
    _, reference_out = grade_subset(release, tmp_path / "reference")
    submissions = write_corpus(release, tmp_path / "killed" / "submitted", ASSIGNMENT, names=SUBSET)
    out = tmp_path / "killed" / "grader"
    command = [sys.executable, "-m", "autograder", "grade", ASSIGNMENT, "--submissions", str(submissions),
               "--out", str(out), "--timeout", str(TIMEOUT)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while len(list((out / "results").glob("*.json"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)  # the grader and its kernel, mid-batch
    process.wait()
    finished = len(list((out / "results").glob("*.json")))
    assert 2 <= finished < len(SUBSET), "kill the batch while it is running"
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert f"grading {len(SUBSET) - finished}" in result.stdout
    resumed, reference = read_csv(out / "grades.csv"), read_csv(reference_out / "grades.csv")
    differences = {s: {k: (v, reference[s][k]) for k, v in row.items() if v != reference[s][k]}
                   for s, row in resumed.items()}
    assert resumed.keys() == reference.keys() and not any(differences.values()), differences


def test_unisolated_grading_says_so_in_every_row(release, tmp_path, monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # as if the grader were not root
    submissions = write_corpus(release, tmp_path / "submitted", ASSIGNMENT, names=["correct"])
    lines = []
    [result] = batch.grade(ASSIGNMENT, submissions, tmp_path / "grader", options=batch.Options(timeout=TIMEOUT),
                           progress=lines.append)
    assert result.status == "graded-unisolated" and "unisolated" in result.flags
    assert sum(result.scores.values()) == 10
    assert any("NOT ISOLATED" in line for line in lines)
    assert "NOT ISOLATED" in (tmp_path / "grader" / "grader.log").read_text()


def test_a_bad_submissions_folder_is_a_clear_error(tmp_path):
    result = run_cli("grade", ASSIGNMENT, "--submissions", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"))
    assert result.returncode != 0
    assert "--submissions must be a folder" in result.stderr


@pytest.mark.parametrize("jobs", ["0", "-2"])
def test_a_bad_jobs_count_is_a_clear_error(tmp_path, jobs):
    result = run_cli("grade", ASSIGNMENT, "--submissions", str(tmp_path), "--out", str(tmp_path / "out"),
                     "--jobs", jobs)
    assert result.returncode == 2 and "--jobs must be a whole number of at least 1" in result.stderr


def test_sandbox_policy_round_trips():
    policy = sandbox.Policy(user="u", hide=["/a"], keep=["/a/b"], limits=sandbox.Limits(cpu_seconds=5), scratch_root="/s")
    assert sandbox.Policy.from_json(policy.to_json()) == policy
