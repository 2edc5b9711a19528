"""The exercise pages' reference solutions: shown collapsed, from cvprep, and really gone
from a site built with `make book SOLUTIONS=0`."""

import html
import re
from pathlib import Path

import nbformat
import pytest

import site_build
from repo_paths import BOOK, REPO
from autograder import course
from autograder.sources import solution_cell, split_solutions

pytestmark = pytest.mark.slow

EXERCISE_PAGES = [p for p in site_build.toc_pages() if p.startswith("book/_exercises/")]
SHORT = 25  # shorter lines ("return keep", "else:") also occur in the chapters' own code


def normalised(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def student_text() -> str:
    """What the released student notebooks already give away (provided helpers, hints)."""
    notebooks = sorted((BOOK / "_exercises").glob("*/*.ipynb"))
    return normalised("\n".join(cell.source for path in notebooks for cell in nbformat.read(path, 4).cells))


def solution_lines() -> set[str]:
    """Every distinctive line of every solution region, as the package fills it today.

    Distinctive: long enough not to be generic, and not already in the student notebook
    (argument checks repeat the provided helpers' code).
    """
    given, lines = student_text(), set()
    for path in sorted(course.EXERCISES.glob("*/*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            spec = cell.metadata.get("cvprep", {})
            if "solution_from" in spec:
                _, regions = split_solutions(solution_cell(cell.source, spec["solution_from"]))
                lines |= {normalised(line) for region in regions for line in region.splitlines()}
    return {line for line in lines if len(line) >= SHORT and not line.startswith("#") and line not in given}


def site_text(site: Path) -> str:
    """All the text a reader could get from a site: pages without their markup, and every other text file."""
    texts = []
    for path in site.rglob("*"):
        if not path.is_file() or path.suffix in {".png", ".woff", ".woff2", ".ttf", ".eot", ".otf", ".ico", ".gif"}:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        texts.append(html.unescape(re.sub(r"<[^>]+>", "", text)) if path.suffix == ".html" else text)
    return normalised("\n".join(texts))


@pytest.fixture(scope="module")
def without_solutions():
    site_build.build(site_build.NO_SOLUTIONS_ROOT, solutions=False)
    return site_build.NO_SOLUTIONS_SITE


def test_exercise_pages_end_with_every_reference_solution_collapsed(build_log):
    for name in EXERCISE_PAGES:
        text = (site_build.SITE / name).with_suffix(".html").read_text(encoding="utf-8")
        notebook = nbformat.read(course.EXERCISES / f"{Path(name).parent.name}" / f"{Path(name).name}.ipynb", 4)
        parts = [c for c in notebook.cells if "solution_from" in c.metadata.get("cvprep", {})]
        section = text.split('id="reference-solutions"', 1)[1]
        dropdowns = re.findall(r"<details[^>]*sd-dropdown[^>]*>", section)
        assert len(dropdowns) == len(parts), name
        assert not any(" open" in tag for tag in dropdowns), "solutions must start collapsed"


def test_the_site_shows_the_solutions_the_package_has_today(build_log):
    shown = site_text(site_build.SITE)
    lines = solution_lines()
    assert len(lines) > 50  # the check below must have something to look for
    assert not [line for line in lines if line not in shown]


def test_solutions_switch_removes_every_solution_line(build_log, without_solutions):
    text = site_text(without_solutions)
    leaked = [line for line in solution_lines() if line in text]
    assert not leaked, f"{len(leaked)} solution lines in the SOLUTIONS=0 site, e.g. {leaked[:3]}"
    # the exercise pages themselves are still there, with their download link
    for name in EXERCISE_PAGES:
        page = (without_solutions / name).with_suffix(".html").read_text(encoding="utf-8")
        assert 'id="reference-solutions"' not in page and "Work on this exercise" in page


def test_make_book_passes_the_switch_to_the_build():
    makefile = (REPO / "Makefile").read_text()
    assert "SOLUTIONS ?= 1" in makefile
    assert re.search(r"^\tCVPREP_SOLUTIONS=\$\(SOLUTIONS\) \$\(BIN\)/jupyter-book build", makefile, re.MULTILINE)
