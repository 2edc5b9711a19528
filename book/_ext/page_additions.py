"""What the build adds to chapter and exercise pages (their sources stay as written).

* Every chapter page, after its title: how to run it, in Binder or locally with
  ``make lab`` (public Binder capacity is scarce).
* Every exercise page (a student notebook released into ``book/_exercises/``): a link
  to download that notebook, and at the end the reference solution of every part,
  collapsed. The solutions are generated from the ``cvprep`` package at build time, with
  the same code that keeps the exercise notebooks in sync (``autograder.sources``), so
  there is no second copy. ``make book SOLUTIONS=0`` (or ``cvprep_solutions: false``
  under ``sphinx: config:`` in ``_config.yml``) builds the site without them.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

CHAPTER_PAGE = re.compile(r"^book/\d\d-[a-z-]+/[a-z-]+$")
EXERCISE_PAGE = re.compile(r"^book/_exercises/(?P<assignment>\d\d-[a-z-]+)/(?P<name>[a-z_-]+)$")
PART_HEADING = re.compile(r"^## (Part \d+: .*?)(?: \(\d+ points?\))?$", re.MULTILINE)
SOLUTIONS_SWITCH = "CVPREP_SOLUTIONS"  # the environment variable `make book SOLUTIONS=0` sets


def repository_url(app) -> str:
    return app.config.html_theme_options.get("repository_url", "").rstrip("/")


def run_locally_note(app, docname: str) -> str:
    """Two lines of MyST: how to open ``docname`` in Binder or in a local JupyterLab."""
    return (
        ":::{admonition} Run this page\n:class: tip\n"
        "In Binder: the rocket button at the top of the page (free, but often busy).  \n"
        f"On your machine: `git clone {repository_url(app)}`, then `make lab` in the clone, "
        f"and open `{docname}.md`.\n:::\n"
    )


def exercise_note(app, name: str) -> str:
    return (
        ":::{admonition} Work on this exercise\n:class: tip\n"
        f"This page is the student notebook: {{download}}`download {name}.ipynb <{name}.ipynb>`, "
        "or open it in Binder with the rocket button at the top.  \n"
        f"On your machine: `git clone {repository_url(app)}`, then `make lab` in the clone: it copies "
        "every exercise into `workspace/` and opens JupyterLab there, with nbgrader's *Validate* button.\n:::\n"
    )


def _without_markers(code: str) -> str:
    from autograder.sources import BEGIN, END

    return "\n".join(line for line in code.splitlines() if line.strip() not in (BEGIN, END))


def reference_solutions(source_notebook: Path) -> tuple[str, list[str]]:
    """MyST for the collapsed reference solutions of an exercise, and the modules they come from.

    Each solution cell of the nbgrader source notebook is filled from ``cvprep`` afresh
    (``autograder.sources.solution_cell``), so the page shows the package as it is now.
    """
    import nbformat
    from autograder.sources import solution_cell

    notebook = nbformat.read(source_notebook, as_version=4)
    blocks, modules, part = [], set(), "Reference solution"
    for cell in notebook.cells:
        headings = PART_HEADING.findall(cell.source) if cell.cell_type == "markdown" else []
        part = headings[-1] if headings else part
        spec = cell.metadata.get("cvprep", {})
        if "solution_from" not in spec:
            continue
        references = spec["solution_from"]
        references = [references] if isinstance(references, str) else references
        modules.update(reference.partition(":")[0] for reference in references)
        code = _without_markers(solution_cell(cell.source, spec["solution_from"]))
        taught = f"Taught in {{doc}}`/{spec['section']}`.\n\n" if "section" in spec else ""
        blocks.append(f"::::{{dropdown}} {part}\n{taught}````python\n{code}\n````\n::::\n")
    intro = ("## Reference solutions\n\n"
             "The reference code of each part, from the `cvprep` package. Open one after you have "
             "passed the part's tests, or when you are stuck and want to compare.\n\n")
    return intro + "\n".join(blocks), sorted(modules)


def solutions_enabled(app) -> bool:
    return bool(app.config.cvprep_solutions)


def _markdown_cell(cell_id: str, text: str) -> dict:
    return {"cell_type": "markdown", "id": cell_id, "metadata": {}, "source": text}


def _module_file(module: str) -> str:
    import importlib

    return importlib.import_module(module).__file__


def add_to_exercise_page(app, docname: str, match: re.Match, source: list[str]) -> None:
    notebook = json.loads(source[0])
    name = match["name"]
    notebook["cells"].insert(1, _markdown_cell("cvprep-work-on-it", exercise_note(app, name)))
    if solutions_enabled(app):
        source_notebook = Path(app.srcdir) / "exercises" / match["assignment"] / f"{name}.ipynb"
        app.env.note_dependency(str(source_notebook))
        text, modules = reference_solutions(source_notebook)
        for module in modules:  # editing the package rebuilds the page
            app.env.note_dependency(_module_file(module))
        notebook["cells"].append(_markdown_cell("cvprep-reference-solutions", text))
    source[0] = json.dumps(notebook)


def add_to_chapter_page(app, docname: str, source: list[str]) -> None:
    """Insert the run-locally note after the page's first ``# `` title."""
    lines = source[0].split("\n")
    title = next((i for i, line in enumerate(lines) if line.startswith("# ")), None)
    if title is None:
        return
    lines.insert(title + 1, "\n" + run_locally_note(app, docname))
    source[0] = "\n".join(lines)


def add_to_page(app, docname: str, source: list[str]) -> None:
    exercise = EXERCISE_PAGE.match(docname)
    if exercise:
        add_to_exercise_page(app, docname, exercise, source)
    elif CHAPTER_PAGE.match(docname):
        add_to_chapter_page(app, docname, source)


def setup(app) -> None:
    # rebuild "env": switching the solutions on or off re-reads the pages (execution stays cached)
    app.add_config_value("cvprep_solutions", os.environ.get(SOLUTIONS_SWITCH, "1") != "0", "env")
    app.connect("source-read", add_to_page)
