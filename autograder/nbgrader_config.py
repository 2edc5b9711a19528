"""nbgrader configuration of the cvprep course.

Every path is derived from this file's location, so the course works from any checkout
and from any working directory. The instructor's working folders (release, submitted,
autograded, feedback, gradebook.db) live under ``_build/course/`` and are never
committed; the nbgrader *source* notebooks are the ones under ``exercises/``.

Use it from Python through ``autograder.course`` (``python -m autograder ...``), or
with nbgrader's own command line: ``nbgrader autograde ... --config autograder/nbgrader_config.py``.
"""

from pathlib import Path

c = get_config()  # noqa: F821 - traitlets provides get_config() when it loads this file

REPO = Path(__file__).resolve().parent.parent
COURSE = REPO / "_build" / "course"

c.CourseDirectory.course_id = "cvprep"
c.CourseDirectory.root = str(COURSE)
c.CourseDirectory.source_directory = str(REPO / "exercises")
c.CourseDirectory.db_url = f"sqlite:///{COURSE / 'gradebook.db'}"
c.Exchange.root = str(COURSE / "exchange")

# What the learner sees where a solution was.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# A learner's loop version of conv2d runs the hidden tests in well under a second; a
# minute per cell leaves room for slow machines without letting one notebook hang a batch.
c.Execute.timeout = 60
c.Execute.interrupt_on_timeout = True
