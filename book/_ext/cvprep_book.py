"""Sphinx extension for the cvprep book (loaded by _config.yml, sphinx.local_extensions).

1. Plotly figures. Under ipykernel, plotly emits only the mime type
   ``application/vnd.plotly.v1+json``, which myst-nb does not render (figures would be
   silently empty). A myst-nb mime renderer turns that JSON into a ``<div>`` plus a
   ``Plotly.newPlot`` call; slider steps and animation frames are part of the JSON, so
   the figure stays interactive without a kernel. ``offline_assets`` serves plotly.js
   and every other script from the site itself.
2. The interview-question page. ``book/questions.yml`` is the single list of questions;
   the page ``questions.md`` gets one entry per question appended at read time, each
   linking to the section that teaches it.
3. The rest, one module each beside this one: ``offline_assets`` (no CDN),
   ``execution_cache`` (re-run pages when cvprep changes), ``parallel_execution`` (a
   clean build executes pages on every core), ``page_additions`` (how to
   run each page; the exercise pages' download link and reference solutions).
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from docutils import nodes
from myst_nb.core import render

import execution_cache
import offline_assets
import page_additions
import parallel_execution

PLOTLY_MIME = "application/vnd.plotly.v1+json"
HTML_BUILDERS = ("html", "dirhtml", "singlehtml")
QUESTIONS_PAGE = "book/questions"


class PlotlyMimeRenderer:
    """myst-nb mime renderer plugin (see ``myst_nb.core.render.MimeRenderPlugin``)."""

    # lower is preferred; text/html is 30 for HTML builders
    mime_priority_overrides = [(builder, PLOTLY_MIME, 5) for builder in HTML_BUILDERS]

    @staticmethod
    def handle_mime(renderer, data, inline):
        if data.mime_type != PLOTLY_MIME or inline:
            return None
        import plotly.io

        spec = json.loads(data.content) if isinstance(data.content, (str, bytes)) else data.content
        html = plotly.io.to_html(
            spec,
            include_plotlyjs=False,  # loaded once per page, from _static/
            include_mathjax=False,
            auto_play=False,  # animations start when the reader presses play
            full_html=False,
            config={"displaylogo": False, "responsive": True},
        )
        return [nodes.raw("", html, format="html", classes=["output", "text_html", "cvprep-plotly"])]


def _register_plotly_renderer() -> None:
    # myst-nb discovers mime renderers through an entry point group and caches the list;
    # appending to that cached list registers this project's renderer without
    # installing a separate distribution just for one entry point.
    plugins = render.load_mime_renders()
    if not any(plugin is PlotlyMimeRenderer for plugin in plugins):
        plugins.append(PlotlyMimeRenderer)


def chapter_title(book: Path, chapter: str) -> str:
    """The first level-1 heading of a chapter's index page."""
    for line in (book / chapter / "index.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    raise ValueError(f"book/{chapter}/index.md has no '# ' title")


def question_entries(questions: list[dict], book: Path) -> str:
    """MyST markdown for the question page: one heading per chapter, one entry per question."""
    lines = []
    chapter = None
    for q in questions:
        if q["chapter"] != chapter:
            chapter = q["chapter"]
            lines += ["", f"## {chapter_title(book, chapter)}", "",
                      f"{{doc}}`Read the chapter </book/{chapter}/index>`", ""]
        lines += [
            f"({'q-' + q['id']})=",
            f"### `{q['id']}` {q['question'].strip()}",
            "",
            q["answer"].strip(),
            "",
            f"*Taught in* {{ref}}`{q['section']}`.",
            "",
        ]
    return "\n".join(lines)


def _append_questions(app, docname, source):
    if docname != QUESTIONS_PAGE:
        return
    path = Path(app.srcdir) / "book" / "questions.yml"
    app.env.note_dependency(str(path))  # editing the data file rebuilds the page
    questions = yaml.safe_load(path.read_text(encoding="utf-8"))
    source[0] += "\n" + question_entries(questions, path.parent)


def setup(app):
    # A config value that changes with this extension's code: Sphinx then re-reads every
    # page after an edit here (notebook execution stays cached), as it would for a conf.py edit.
    app.add_config_value("cvprep_extension_hash", execution_cache.package_hash(Path(__file__).parent), "env")
    _register_plotly_renderer()
    offline_assets.setup(app)
    execution_cache.setup(app)
    page_additions.setup(app)
    parallel_execution.setup(app)
    app.connect("source-read", _append_questions)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
