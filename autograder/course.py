"""The cvprep course as nbgrader sees it: release assignments and grade submissions.

A thin layer over nbgrader's Python API (``NbGraderAPI``), which does the real work;
it loads ``nbgrader_config.py``, turns nbgrader's ``{"success": False, "log": ...}``
results into exceptions with the log attached, and reads per-cell scores back from the
gradebook.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from traitlets.config import Config, PyFileConfigLoader

CONFIG_FILE = Path(__file__).with_name("nbgrader_config.py")
REPO = CONFIG_FILE.resolve().parent.parent
EXERCISES = REPO / "exercises"


def _put_environment_on_path() -> None:
    # nbgrader's database migrations (``nbgrader db upgrade``) run the `alembic` command; it
    # sits next to this interpreter, which is not on PATH when the venv isn't activated.
    scripts = str(Path(sys.executable).parent)
    if scripts not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = scripts + os.pathsep + os.environ.get("PATH", "")


def alembic_head() -> str:
    """The newest revision of nbgrader's gradebook schema, read in this process.

    nbgrader stamps a new gradebook with it by running ``alembic heads`` as a command,
    which spends two seconds starting an interpreter to read one line from the same
    migration scripts.
    """
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory
    from nbgrader.dbutil import ALEMBIC_DIR

    config = AlembicConfig()
    config.set_main_option("script_location", ALEMBIC_DIR)
    return ScriptDirectory.from_config(config).get_current_head()


def _stamp_new_gradebooks_in_process() -> None:
    import nbgrader.api

    nbgrader.api.get_alembic_version = alembic_head


class NbgraderError(RuntimeError):
    """An nbgrader step failed; the message carries nbgrader's log."""


def load_config(course_root: Path | None = None) -> Config:
    """The course configuration; ``course_root`` moves the working folders and gradebook elsewhere."""
    config = PyFileConfigLoader(CONFIG_FILE.name, path=str(CONFIG_FILE.parent)).load_config()
    if course_root is not None:
        course_root = Path(course_root).resolve()
        config.CourseDirectory.root = str(course_root)
        # Several grading processes share the gradebook: wait for a lock rather than fail.
        config.CourseDirectory.db_url = f"sqlite:///{course_root / 'gradebook.db'}?timeout=60"
        config.Exchange.root = str(course_root / "exchange")
    return config


def assignments() -> list[str]:
    """Assignment ids: the folders of ``exercises/`` that hold a notebook."""
    return sorted(p.name for p in EXERCISES.iterdir() if p.is_dir() and any(p.glob("*.ipynb")))


def _strip_source_references(path: Path) -> None:
    """Remove the ``cvprep`` cell metadata: it names the reference function behind each solution."""
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        cell.metadata.pop("cvprep", None)
    nbformat.write(notebook, path)


@dataclass(frozen=True)
class CellGrade:
    """The autograded score of one grade cell."""

    grade_id: str
    notebook: str
    score: float | None  # None when nbgrader could not grade the cell
    max_score: float


class Course:
    """One course folder (by default ``_build/course``) with its gradebook."""

    def __init__(self, root: Path | None = None):
        from nbgrader.apps import NbGraderAPI

        _put_environment_on_path()
        _stamp_new_gradebooks_in_process()
        self.config = load_config(root)
        self.root = Path(self.config.CourseDirectory.root)
        (self.root / "exchange").mkdir(parents=True, exist_ok=True)  # nbgrader lists it on start-up
        self.api = NbGraderAPI(config=self.config)

    def _check(self, result: dict, what: str) -> None:
        if not result.get("success"):
            raise NbgraderError(f"{what} failed:\n{result.get('error') or ''}\n{result.get('log') or ''}")

    def release(self, assignment: str) -> Path:
        """Generate the student version of ``assignment``; return its folder."""
        if assignment not in assignments():
            raise ValueError(f"unknown assignment {assignment!r}; the assignments are {assignments()}")
        self._check(self.api.generate_assignment(assignment, force=True, create=True), f"releasing {assignment}")
        folder = self.root / "release" / assignment
        for path in folder.glob("*.ipynb"):
            _strip_source_references(path)
        return folder

    def submit(self, assignment: str, student: str, notebooks: list[Path]) -> Path:
        """Place a student's notebooks where nbgrader expects a collected submission."""
        folder = self.root / "submitted" / student / assignment
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        for notebook in notebooks:
            shutil.copyfile(notebook, folder / Path(notebook).name)
        return folder

    def autograde(self, assignment: str, student: str) -> list[CellGrade]:
        """Autograde one submission and return the score of every grade cell."""
        self._check(self.api.autograde(assignment, student, force=True, create=True),
                    f"autograding {student}/{assignment}")
        return self.grades(assignment, student)

    def grades(self, assignment: str, student: str) -> list[CellGrade]:
        """Per-cell scores of a graded submission, read from the gradebook."""
        from nbgrader.api import Gradebook

        with Gradebook(self.config.CourseDirectory.db_url) as gradebook:
            submission = gradebook.find_submission(assignment, student)
            return [
                CellGrade(grade.name, notebook.name, grade.score, grade.max_score)
                for notebook in submission.notebooks
                for grade in notebook.grades
                if grade.cell.max_score and grade.cell.cell_type == "code"
            ]
