"""Grade a class: every submission gets a row in ``grades.csv``, feedback and a reason.

``python -m autograder grade ASSIGNMENT --submissions DIR --out DIR`` runs :func:`grade`.
For each ``DIR/<student>/<ASSIGNMENT>/`` it

1. prescreens the notebook (:mod:`autograder.prescreen`): missing and unreadable files
   get a row with status ``missing`` / ``unreadable`` and never reach nbgrader;
   renamed, duplicated, stripped, deleted and edited cells are repaired and flagged;
2. autogrades it with nbgrader's API, its kernel in the sandbox
   (:mod:`autograder.sandbox`) and watched by the guard (:mod:`autograder.guard`);
3. zeroes the parts whose solution used the reference package (flag ``uses-reference``)
   or read files outside the student's folder (flag ``reads-outside``), as a manual score
   in the gradebook, so nbgrader's own tools show the same grade;
4. writes ``results/<student>.json`` (atomically: a batch killed half-way resumes where
   it stopped, and a second run with the same submissions regrades nothing) and the
   feedback, with each failed part linked to the book section that teaches it.

``grades.csv`` is written from the gradebook and the results of all students; one
student's grading never touches another's row.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import logging
import os
import io
import re
import shutil
import time
import tokenize
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import nbformat

from autograder import course, kernel_guard, prescreen, sandbox

USES_REFERENCE = "uses-reference"
READS_OUTSIDE = "reads-outside"
TIMEOUT = "timeout"
KERNEL_DIED = "kernel-died"
MEMORY = "memory-limit"
OUTPUT_CUT = "output-cut"
UNISOLATED = "unisolated"
DEFAULT_BOOK_URL = (course.REPO / "_build" / "html").as_uri()


@dataclass(frozen=True)
class Options:
    """How to grade; every field changes the grader's fingerprint (and so regrades)."""

    timeout: int = 60  # seconds per cell
    limits: sandbox.Limits = sandbox.Limits()
    max_output_chars: int = 20_000
    book_url: str = DEFAULT_BOOK_URL


@dataclass
class Result:
    """One row of grades.csv, and what the feedback says."""

    student: str
    assignment: str
    status: str  # graded, graded-unisolated, missing, unreadable, failed
    flags: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    scores: dict[str, float | None] = field(default_factory=dict)
    zeroed: list[str] = field(default_factory=list)  # grade ids this grader set to 0
    seconds: float = 0.0
    fingerprint: str = ""

    def flag(self, flag: str, note: str) -> None:
        if flag not in self.flags:
            self.flags.append(flag)
        if note not in self.notes:
            self.notes.append(note)


@dataclass(frozen=True)
class Part:
    grade_id: str
    title: str
    points: float
    solution: str | None  # the solution cell it tests
    section: str | None  # book page that teaches it, e.g. "book/01-convolution/pooling"


class Exercise:
    """What the source notebook says about the assignment: its graded parts and their sections."""

    def __init__(self, assignment: str):
        folder = course.EXERCISES / assignment
        notebooks = sorted(folder.glob("*.ipynb"))
        if len(notebooks) != 1:
            raise ValueError(f"assignment {assignment!r} must have exactly one notebook, found {len(notebooks)}")
        self.assignment = assignment
        self.source = notebooks[0]
        self.name = self.source.stem
        source = nbformat.read(self.source, as_version=4)
        self.parts: list[Part] = []
        solution, section = None, None
        for cell in source.cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("solution"):
                solution = meta["grade_id"]
                section = cell.metadata.get("cvprep", {}).get("section")
            elif meta.get("grade") and cell.cell_type == "code":
                self.parts.append(Part(meta["grade_id"], _docstring_title(cell.source) or meta["grade_id"],
                                       float(meta.get("points", 0)), solution, section))
        self.max_score = sum(p.points for p in self.parts)

    def tests_of(self, solution: str | None) -> list[str]:
        """Grade ids testing a solution cell; every part when ``solution`` is None."""
        return [p.grade_id for p in self.parts if solution is None or p.solution == solution]

    def section_link(self, part: Part, book_url: str) -> tuple[str, str] | None:
        if not part.section:
            return None
        page = course.REPO / f"{part.section}.md"
        title = part.section
        if page.exists():
            heading = re.search(r"^#\s+(.+)$", page.read_text(), flags=re.MULTILINE)
            title = heading.group(1).strip() if heading else title
        return title, f"{book_url.rstrip('/')}/{part.section}.html"


def _docstring_title(source: str) -> str | None:
    match = re.match(r'\s*(?:"""|\'\'\')(.+?)(?:"""|\'\'\'|\n)', source)
    return match.group(1).strip() if match else None


def _sha256(*parts: bytes | str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()


def grader_fingerprint(exercise: Exercise, options: Options, isolation: str | None) -> str:
    code = sorted(Path(__file__).parent.glob("*.py"))
    return _sha256(exercise.source.read_bytes(), *(p.read_bytes() for p in code),
                   json.dumps(asdict(options), sort_keys=True), str(isolation))


# ---------------------------------------------------------------- the batch


class Batch:
    """The grader's folders under ``out``; nbgrader's course lives in ``out/nbgrader``."""

    def __init__(self, assignment: str, submissions: Path, out: Path, options: Options = Options()):
        if assignment not in course.assignments():
            raise ValueError(f"unknown assignment {assignment!r}; the assignments are {course.assignments()}")
        self.assignment = assignment
        self.submissions = Path(submissions).resolve()
        if not self.submissions.is_dir():
            raise ValueError(f"--submissions must be a folder of <student>/{assignment}/ folders; "
                             f"{self.submissions} is not a folder")
        self.out = Path(out).resolve()
        self.options = options
        self.exercise = Exercise(assignment)
        self.root = self.out / "nbgrader"
        self.results = self.out / "results"
        self.reports = self.root / "reports"
        self.feedback = self.out / "feedback"
        self.log_path = self.out / "grader.log"

    # -- set-up, in the main process

    def prepare(self, log: logging.Logger) -> None:
        for folder in (self.out, self.root, self.results, self.feedback):
            folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)  # the gradebook and everyone's submissions
        self.policy, self.unisolated = sandbox.plan(
            [course.REPO, self.submissions, self.out], self.root / "scratch", self.options.limits)
        if self.unisolated:
            log.warning("NOT ISOLATED: %s. Every row of grades.csv says so.", self.unisolated)
        else:
            log.info("isolated: kernels run as %r in a private mount namespace", self.policy.user)
        sandbox.write_kernelspec(self.root / "jupyter", self.policy, preload=heavy_imports(self.exercise.source))
        os.environ["JUPYTER_PATH"] = str(self.root / "jupyter")
        self.fingerprint = grader_fingerprint(self.exercise, self.options, self.unisolated)
        stamp = self.root / "release" / f".{self.assignment}.source"
        source_hash = _sha256(self.exercise.source.read_bytes())
        grader = self.course()
        if not stamp.exists() or stamp.read_text() != source_hash:
            log.info("releasing %s into %s", self.assignment, self.root)
            grader.release(self.assignment)
            stamp.write_text(source_hash)
        self.release_path = self.root / "release" / self.assignment / f"{self.exercise.name}.ipynb"

    def course(self) -> course.Course:
        grader = course.Course(self.root)
        configure_grading(grader.config, self)
        from nbgrader.apps import NbGraderAPI

        grader.api = NbGraderAPI(config=grader.config)
        return grader

    def students(self) -> list[str]:
        return sorted(p.name for p in self.submissions.iterdir()
                      if p.is_dir() and not p.name.startswith(".") and _valid_student_id(p.name))

    def previous(self, student: str) -> Result | None:
        """The result a previous run saved for ``student``, if any."""
        try:
            return Result(**json.loads((self.results / f"{student}.json").read_text()))
        except (OSError, ValueError, TypeError):
            return None

    def cached(self, student: str, fingerprint: str) -> Result | None:
        """The previous result, if it graded these very bytes the same way and did not fail."""
        result = self.previous(student)
        if result is None or result.fingerprint != fingerprint or result.status == "failed":
            return None  # a grader failure is retried on the next run
        return result

    def save(self, result: Result) -> None:
        path = self.results / f"{result.student}.json"
        partial = path.with_suffix(".json.partial")
        partial.write_text(json.dumps(asdict(result), indent=1))
        os.replace(partial, path)  # a killed grader leaves the old result or the new one, never half


HEAVY_MODULES = ("torch", "torchvision")  # seconds to import: worth importing once per grading process


def heavy_imports(notebook_path: Path) -> tuple[str, ...]:
    """The heavy modules the notebook's code imports (none for a NumPy-only exercise)."""
    imported = set()
    for cell in nbformat.read(notebook_path, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue  # IPython magics; a real syntax error is the student's, not ours
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
    return tuple(m for m in HEAVY_MODULES if m in imported)


def _valid_student_id(name: str) -> bool:
    return re.fullmatch(r"[A-Za-z0-9_.@+-]+", name) is not None


def configure_grading(config, batch: Batch) -> None:
    """nbgrader's autograde steps, with the guarded execution and the sandbox kernel."""
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, IgnorePattern, LimitOutput,
                                        SaveAutoGrades)

    from autograder.guard import CollectGuard, GuardedExecute, InjectGuard

    config.Autograde.autograde_preprocessors = [
        InjectGuard, GuardedExecute, CollectGuard, IgnorePattern, ClearMetadataPreprocessor, LimitOutput,
        SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
    config.Execute.timeout = batch.options.timeout
    config.Execute.kernel_name = sandbox.KERNEL_NAME
    # A graded kernel has nothing to save: kill it rather than wait for a clean exit.
    config.Execute.shutdown_kernel = "immediate"
    config.AsyncKernelManager.client_class = "autograder.zygote.QuickReadyClient"
    config.InjectGuard.reference_roots = [str(Path(p)) for p in _reference_roots()]
    config.InjectGuard.max_output_chars = batch.options.max_output_chars
    config.CollectGuard.max_output_chars = batch.options.max_output_chars
    config.CollectGuard.report_dir = str(batch.reports)


def _reference_roots() -> list[str]:
    import importlib.util

    spec = importlib.util.find_spec("cvprep")
    return list(spec.submodule_search_locations or []) if spec else []


# ---------------------------------------------------------------- one student


def submission_folder(batch: Batch, student: str) -> Path:
    return batch.submissions / student / batch.assignment


def screen(batch: Batch, student: str) -> tuple[prescreen.Prescreened, str]:
    """Prescreen one student's submission; return it with the fingerprint of this grading."""
    screened = prescreen.prescreen(submission_folder(batch, student), batch.release_path)
    return screened, _sha256(batch.fingerprint, screened.status, screened.raw)


def grade_student(batch: Batch, grader: course.Course, student: str,
                  screened: prescreen.Prescreened, fingerprint: str) -> Result:
    """Grade one prescreened submission; never raises (a grader failure becomes status ``failed``)."""
    started = time.monotonic()
    result = Result(student, batch.assignment, status=screened.status, fingerprint=fingerprint)
    result.flags, result.notes = list(screened.flags), list(screened.notes)
    try:
        if screened.status == "ok":
            _autograde(batch, grader, student, screened, result)
        else:
            result.scores = {p.grade_id: 0.0 for p in batch.exercise.parts}
            _placeholder_feedback(batch, result)
    except Exception as error:  # noqa: BLE001 - one student's failure must not stop the batch
        result.status = "failed"
        result.notes.append(f"the grader failed on this submission: {type(error).__name__}: {str(error)[:2000]}")
        result.scores = {p.grade_id: None for p in batch.exercise.parts}
    result.seconds = round(time.monotonic() - started, 2)
    return result


def _autograde(batch, grader, student, screened, result) -> None:
    folder = grader.root / "submitted" / student / batch.assignment
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    original = submission_folder(batch, student)
    timestamp = original / "timestamp.txt"
    if timestamp.is_file():
        shutil.copyfile(timestamp, folder / "timestamp.txt")  # nbgrader's late penalties read it
    nbformat.write(screened.notebook, folder / batch.release_path.name)
    report_path = batch.reports / student / f"{batch.exercise.name}.json"
    report_path.unlink(missing_ok=True)
    _clear_our_zeros(batch, grader, student)
    for attempt in range(3):  # parallel workers share one SQLite gradebook: retry a transient lock
        outcome = grader.api.autograde(batch.assignment, student, force=True, create=True)
        if outcome.get("success"):
            break
        time.sleep(0.5 * (attempt + 1))
    else:
        text = f"{outcome.get('error') or ''}\n{outcome.get('log') or ''}"
        raise course.NbgraderError(f"nbgrader autograde failed:\n{text[:3000]}\n...\n{text[-3000:]}")
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    _read_report(batch, screened.notebook, report, result)
    _zero_parts_that_cheat(batch, grader, student, result)
    result.scores = {g.grade_id: g.score for g in grader.grades(batch.assignment, student)}
    result.status = "graded-unisolated" if batch.unisolated else "graded"
    if batch.unisolated:
        result.flag(UNISOLATED, f"not isolated: {batch.unisolated}")
    write_feedback(batch, grader, result)


def _read_report(batch, notebook, report, result) -> None:
    errors = report.get("errors", [])
    if "CellTimeoutError" in errors:
        result.flag(TIMEOUT, f"a cell ran longer than {batch.options.timeout} s and was stopped")
    if "KernelDied" in errors:
        result.flag(KERNEL_DIED, "the kernel died (os._exit, a crash or a resource limit); later cells did not run")
    if "MemoryError" in errors:
        result.flag(MEMORY, f"a cell hit the memory limit ({batch.options.limits.memory_bytes / 2**30:.0f} GiB)")
    if report.get("cells_cut"):
        result.flag(OUTPUT_CUT, f"output of {report['cells_cut']} cell(s) was cut to "
                                f"{batch.options.max_output_chars:,} characters")
    if report and not report.get("guard_ran") and KERNEL_DIED not in result.flags:
        result.notes.append("the guard did not report (the kernel stopped early); only the static check ran")
    cells = _student_cells(notebook)
    cheats: dict[str, set[str]] = {}  # flag -> grade ids to zero
    for event in report.get("events", []):
        flag = READS_OUTSIDE if event["kind"] == "open-outside" else USES_REFERENCE
        solution, where, _ = cells.get(event["cell"], (None, "a cell of your own", ""))
        what = f"imports {event['target']}" if event["kind"] == "import" else f"opens {event['target']}"
        result.flag(flag, f"{where} {what}")
        cheats.setdefault(flag, set()).update(batch.exercise.tests_of(solution))
    for solution, where, source in cells.values():
        if _mentions_reference(source):
            result.flag(USES_REFERENCE, f"{where} refers to the reference package cvprep")
            cheats.setdefault(USES_REFERENCE, set()).update(batch.exercise.tests_of(solution))
    result.zeroed = sorted(set().union(*cheats.values())) if cheats else []


def _student_cells(notebook) -> dict[str, tuple[str | None, str, str]]:
    """Source hash -> (solution grade id or None, a description, source) for every cell the student wrote."""
    cells = {}
    for index, cell in enumerate(notebook.cells):
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or (meta.get("locked") or meta.get("grade")) and not meta.get("solution"):
            continue
        key = kernel_guard.source_hash(cell.source)
        solution = meta.get("grade_id") if meta.get("solution") else None
        where = f"the solution cell {solution!r}" if solution else f"code cell {index + 1} (your own)"
        cells.setdefault(key, (solution, where, cell.source))
    return cells


def _mentions_reference(source: str) -> bool:
    """Does code (not a comment) name ``cvprep``? Catches ``import cvprep`` and ``import_module("cvprep.x")``."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        code = "\n".join(line.split("#", 1)[0] for line in source.splitlines())
        return re.search(r"\bcvprep\b", code) is not None
    return any((t.type == tokenize.NAME and t.string == "cvprep")
               or (t.type == tokenize.STRING and re.search(r"\bcvprep\b", t.string)) for t in tokens)


def _clear_our_zeros(batch, grader, student) -> None:
    """Undo the zeros a previous run of this grader set, before grading again."""
    previous = batch.previous(student)
    if not previous or not previous.zeroed:
        return
    _set_manual_scores(grader, batch, student, {grade_id: None for grade_id in previous.zeroed})


def _zero_parts_that_cheat(batch, grader, student, result) -> None:
    if result.zeroed:
        _set_manual_scores(grader, batch, student, {grade_id: 0.0 for grade_id in result.zeroed})
        result.notes.append(f"scored 0 because of the flag(s) above: {', '.join(result.zeroed)}")


def _set_manual_scores(grader, batch, student, scores: dict[str, float | None]) -> None:
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(grader.config.CourseDirectory.db_url) as gradebook:
        for grade_id, score in scores.items():
            try:
                grade = gradebook.find_grade(grade_id, batch.exercise.name, batch.assignment, student)
            except MissingEntry:
                continue
            grade.manual_score = score
        gradebook.db.commit()


# ---------------------------------------------------------------- feedback


FEEDBACK_TAG = "cvprep-grader-feedback"


def _summary_markdown(batch: Batch, result: Result) -> str:
    lines = [f"## Grader's summary: {_total(result):g} / {batch.exercise.max_score:g}", ""]
    if result.notes:
        lines += ["**What the grader noticed:**", ""] + [f"- {note}" for note in result.notes] + [""]
    lines += ["| part | points | result | revise |", "| :-- | --: | :-- | :-- |"]
    for part in batch.exercise.parts:
        score = result.scores.get(part.grade_id)
        passed = score is not None and score >= part.points
        link = batch.exercise.section_link(part, batch.options.book_url)
        revise = "" if passed or not link else f"[{link[0]}]({link[1]})"
        shown = "not graded" if score is None else f"{score:g} / {part.points:g}"
        lines.append(f"| {part.title} | {shown} | {'passed' if passed else 'not passed'} | {revise} |")
    return "\n".join(lines)


def _failure_markdown(batch: Batch, part: Part, cell) -> str:
    errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    error = f"`{errors[-1].get('ename')}: {str(errors[-1].get('evalue', '')).splitlines()[0][:300] if str(errors[-1].get('evalue', '')) else ''}`" if errors else "no error, but the cell wrote to stderr"
    text = f"**Not passed: {part.title}.** The test stopped with {error}."
    link = batch.exercise.section_link(part, batch.options.book_url)
    if link:
        text += f" The book explains this in [{link[0]}]({link[1]})."
    return text


def _total(result: Result) -> float:
    return sum(s for s in result.scores.values() if s is not None)


def write_feedback(batch: Batch, grader: course.Course, result: Result) -> None:
    """Annotate the autograded notebook, let nbgrader render it, copy the HTML out."""
    autograded = grader.root / "autograded" / result.student / batch.assignment / f"{batch.exercise.name}.ipynb"
    notebook = nbformat.read(autograded, as_version=4)
    notebook.cells = [c for c in notebook.cells if FEEDBACK_TAG not in c.metadata.get("tags", [])]
    parts = {p.grade_id: p for p in batch.exercise.parts}
    cells = [_note_cell(_summary_markdown(batch, result))]
    for cell in notebook.cells:
        cells.append(cell)
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in parts:
            score = result.scores.get(grade_id)
            if score is None or score < parts[grade_id].points:
                cells.append(_note_cell(_failure_markdown(batch, parts[grade_id], cell)))
    notebook.cells = cells
    nbformat.write(notebook, autograded)
    outcome = grader.api.generate_feedback(batch.assignment, result.student, force=True)
    if not outcome.get("success"):
        raise course.NbgraderError(f"nbgrader generate_feedback failed:\n{(outcome.get('log') or '')[-3000:]}")
    html = grader.root / "feedback" / result.student / batch.assignment / f"{batch.exercise.name}.html"
    target = batch.feedback / result.student / batch.assignment / html.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(html, target)


def _note_cell(text: str):
    cell = nbformat.v4.new_markdown_cell(text)
    cell.metadata["tags"] = [FEEDBACK_TAG]
    return cell


def _placeholder_feedback(batch: Batch, result: Result) -> None:
    """A missing or unreadable submission still gets a page that says why."""
    import html

    target = batch.feedback / result.student / batch.assignment / f"{batch.exercise.name}.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in result.notes)
    target.write_text(
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(batch.assignment)}</title></head>"
        f"<body><h1>{html.escape(batch.assignment)}: 0 / {batch.exercise.max_score:g}</h1>"
        f"<p>Your submission was {html.escape(result.status)}, so nothing could be run.</p><ul>{notes}</ul>"
        f"<p>Submit <code>{html.escape(batch.exercise.name)}.ipynb</code> again as saved by JupyterLab.</p>"
        "</body></html>")


# ---------------------------------------------------------------- grades.csv


def write_csv(batch: Batch, results: list[Result], path: Path) -> None:
    parts = [p.grade_id for p in batch.exercise.parts]
    partial = path.with_suffix(".csv.partial")
    with open(partial, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "assignment", *parts, "total", "max", "status", "flags", "reason"])
        for r in sorted(results, key=lambda r: r.student):
            cells = ["" if r.scores.get(p) is None else f"{r.scores[p]:g}" for p in parts]
            writer.writerow([r.student, r.assignment, *cells, f"{_total(r):g}", f"{batch.exercise.max_score:g}",
                             r.status, ";".join(r.flags), " | ".join(r.notes)])
    os.replace(partial, path)


# ---------------------------------------------------------------- the whole class

_WORKER: dict = {}


def _worker_grade(student: str, screened: prescreen.Prescreened, fingerprint: str) -> Result:
    batch = _WORKER["batch"]
    if "course" not in _WORKER:
        _WORKER["course"] = batch.course()
    result = grade_student(batch, _WORKER["course"], student, screened, fingerprint)
    batch.save(result)
    return result


def grade(assignment: str, submissions: Path, out: Path, jobs: int = 1, force: bool = False,
          options: Options = Options(), progress=print) -> list[Result]:
    """Grade every ``submissions/<student>/<assignment>/``; write grades.csv, feedback and a log."""
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"--jobs must be a whole number of at least 1, got {jobs!r}")
    batch = Batch(assignment, submissions, out, options)
    log = _logger(batch.log_path)
    course._put_environment_on_path()
    batch.prepare(log)
    students = batch.students()
    results: dict[str, Result] = {}
    todo = []
    for student in students:
        screened, fingerprint = screen(batch, student)
        cached = None if force else batch.cached(student, fingerprint)
        if cached:
            results[student] = cached
        else:
            todo.append((student, screened, fingerprint))
    log.info("%s: %d students, %d to grade, %d unchanged since the last run",
             assignment, len(students), len(todo), len(results))
    progress(f"{assignment}: {len(students)} students; grading {len(todo)}"
             + (f" ({len(results)} unchanged, kept)" if results else "")
             + (f"\nWARNING: NOT ISOLATED: {batch.unisolated}" if batch.unisolated else ""))
    _WORKER.clear()  # a previous grade() in this process had its own course
    _WORKER["batch"] = batch
    done = 0
    started = time.monotonic()

    def finished(result: Result) -> None:
        nonlocal done
        done += 1
        results[result.student] = result
        log.info("%s: %s %s/%s %s (%.1f s) %s", result.student, result.status, f"{_total(result):g}",
                 f"{batch.exercise.max_score:g}", ";".join(result.flags), result.seconds, " | ".join(result.notes))
        progress(f"[{done:>{len(str(len(todo)))}}/{len(todo)}] {result.student:<20} "
                 f"{_total(result):>4g}/{batch.exercise.max_score:g}  {result.status:<17} "
                 f"{','.join(f for f in result.flags if f != UNISOLATED):<24} {result.seconds:5.1f} s")

    if jobs <= 1 or len(todo) <= 1:
        for job in todo:
            finished(_worker_grade(*job))
    else:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("fork")) as pool:
            futures = {pool.submit(_worker_grade, *job): job[0] for job in todo}
            for future in as_completed(futures):
                try:
                    finished(future.result())
                except Exception as error:  # noqa: BLE001 - a crashed worker loses no other student
                    student = futures[future]
                    result = Result(student, assignment, "failed", notes=[f"the grading process crashed: {error}"],
                                    scores={p.grade_id: None for p in batch.exercise.parts})
                    finished(result)
    ordered = [results[s] for s in students]
    write_csv(batch, ordered, batch.out / "grades.csv")
    elapsed = time.monotonic() - started
    progress(f"graded {len(todo)} in {elapsed:.1f} s; wrote {batch.out / 'grades.csv'}, "
             f"feedback in {batch.feedback}, log in {batch.log_path}")
    return ordered


def _logger(path: Path) -> logging.Logger:
    path.parent.mkdir(parents=True, exist_ok=True)
    log = logging.getLogger("autograder.batch")
    log.setLevel(logging.INFO)
    for handler in list(log.handlers):
        log.removeHandler(handler)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.propagate = False
    return log
