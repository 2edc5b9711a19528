"""How long does ``make book`` take, from scratch and after editing one page? (A benchmark.)

Goal (on a 2-core machine): a clean build of the book under 4 minutes, and a rebuild
after editing one chapter page under 30 seconds.

The book is built in a fresh ``git clone`` of the committed HEAD (its ``.venv`` a
symlink to this repository's, so nothing is reinstalled; ``make -o .venv/.installed``
keeps make from rebuilding the venv's stamp, older than the clone's files):

* **clean build**: ``npm ci`` (timed alone first), then ``make book``: the release of
  the exercise notebooks, the execution of every page, the HTML;
* **rebuilds** in the same clone, with the execution cache
  (``_build/.jupyter_cache/cvprep-<hash of solutions/cvprep>``) and Sphinx's environment:
  nothing changed; a prose edit (a sentence appended to ``book/06-detection/nms.md``:
  no code changes, so no page runs); a code edit (a line added to the first code cell
  of ``book/01-convolution/pooling.md``: that page alone runs again).
  Median of ``--repeats`` rebuilds, each with a new edit.

For each step: wall time, pages executed (the build's "executed <page>" lines, from
``book/_ext/parallel_execution.py``, and myst-nb's "Executed notebook" ones) and Sphinx's
count of added/changed pages; for the clean build, the slowest pages. The logs of every
build are kept with ``--keep``. The venv's editable install imports ``cvprep``
from this working tree, so uncommitted changes under ``solutions/`` or ``autograder/``
would make the clone's build run code other than HEAD's (a warning says so). The clone
is removed at the end unless ``--keep``.

    .venv/bin/python benchmarks/bench_build.py [--repeats N] [--keep]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MAKE = ["make", "-o", ".venv/.installed"]
PROSE_PAGE = Path("book/06-detection/nms.md")
CODE_PAGE = Path("book/01-convolution/pooling.md")
CLEAN_GOAL = 240.0
REBUILD_GOAL = 30.0


def git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


def clone(dest: Path) -> None:
    """A clone of HEAD in ``dest``, sharing this repository's venv."""
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(dest)], check=True)
    (dest / ".venv").symlink_to(REPO / ".venv")


def timed_make(clone_dir: Path, target: str, log: Path) -> tuple[float, str]:
    """Seconds taken by ``make <target>`` in the clone, and its output (also saved in ``log``)."""
    with open(log, "w") as out:  # written as it goes: tail -f it to follow a build
        start = time.perf_counter()
        result = subprocess.run([*MAKE, target], cwd=clone_dir, stdout=out,
                                stderr=subprocess.STDOUT)
        seconds = time.perf_counter() - start
    output = log.read_text()
    if result.returncode != 0:
        sys.exit(f"make {target} failed (exit {result.returncode}); see {log}\n{output[-3000:]}")
    return seconds, output


ANSI = re.compile(r"\x1b\[[0-9;]*m")
# myst-nb executing a page as Sphinx reads it, and book/_ext/parallel_execution.py beforehand
EXECUTED = [re.compile(r"^(\S+): Executed notebook in ([\d.]+) seconds", re.MULTILINE),
            re.compile(r"^executed (\S+) in ([\d.]+) s$", re.MULTILINE)]


def executed_pages(output: str) -> list[tuple[str, float]]:
    """(page, seconds) of every page a build's output says it executed, slowest first."""
    pages = [(Path(page).with_suffix("").name, float(seconds))
             for pattern in EXECUTED for page, seconds in pattern.findall(output)]
    return sorted(pages, key=lambda page: -page[1])


def summary(output: str) -> str:
    """Pages executed, and Sphinx's "N added, M changed" count, from a build's output."""
    output = ANSI.sub("", output)
    match = re.search(r"updating environment: (?:\[[^\]]*\] )?(\d+) added, (\d+) changed",
                      output)
    read = f"read {match[1]} added, {match[2]} changed" if match else "read none"
    return f"{len(executed_pages(output))} executed; {read}"


def edit_prose(clone_dir: Path, round_: int) -> None:
    with open(clone_dir / PROSE_PAGE, "a") as page:
        page.write(f"\nThis sentence was added by the build benchmark (round {round_}).\n")


def edit_code(clone_dir: Path, round_: int) -> None:
    """Add ``_ = <round>`` to the first code cell, after its header and ``:option:`` lines."""
    path = clone_dir / CODE_PAGE
    lines = path.read_text().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.startswith("```{code-cell}")) + 1
    while lines[at].startswith(":"):
        at += 1
    lines.insert(at, f"_ = {round_}\n")
    path.write_text("".join(lines))


def rebuilds(clone_dir: Path, logs: Path, name: str, edit, repeats: int):
    """Median seconds of ``repeats`` rebuilds, each after ``edit(clone_dir, round)``."""
    times, notes = [], []
    for round_ in range(1, repeats + 1):
        if edit is not None:
            edit(clone_dir, round_)
        seconds, output = timed_make(clone_dir, "book", logs / f"{name}-{round_}.log")
        times.append(seconds)
        notes.append(summary(output))
    spread = ", ".join(f"{t:.1f}" for t in times)
    return statistics.median(times), f"{notes[-1]} (runs: {spread} s)"


def row(step: str, seconds: float, goal: float | None, note: str) -> str:
    verdict = "" if goal is None else ("met" if seconds < goal else "NOT met")
    goal_text = "" if goal is None else f"< {goal:.0f}"
    return f"  {step:<24s} {seconds:8.1f} {goal_text:>6s} {verdict:>8s}  {note}"


def environment() -> None:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"cpus: {os.cpu_count()}; load average (1, 5, 15 min) before starting: {load}")
    print("  (a load above the CPU count means other work shares the machine: figures are"
          " pessimistic)")
    print(f"HEAD: {git('log', '-1', '--format=%h %s')[:90]}")
    dirty = git("status", "--porcelain", "solutions/", "autograder/")
    if dirty:
        print("WARNING: uncommitted changes under solutions/ or autograder/: the venv imports"
              " them, so the build does not run HEAD's code exactly:\n" + dirty)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3, help="rebuilds per kind (median)")
    parser.add_argument("--keep", action="store_true", help="keep the clone and the logs")
    args = parser.parse_args()
    environment()

    workdir = Path(tempfile.mkdtemp(prefix="cvprep-bench-build-"))
    clone_dir, logs = workdir / "cvprep", workdir / "logs"
    logs.mkdir()
    try:
        clone(clone_dir)
        print(f"clone: {clone_dir}; logs: {logs}\n", flush=True)
        npm, _ = timed_make(clone_dir, "node_modules/.installed", logs / "npm.log")
        book, output = timed_make(clone_dir, "book", logs / "clean.log")
        rows = [
            row("clean: npm ci", npm, None, ""),
            row("clean: make book", book, None, summary(output)),
            row("clean: total", npm + book, CLEAN_GOAL, "npm ci + make book"),
        ]
        print("\n".join(r.strip() for r in rows), flush=True)
        slowest = executed_pages(ANSI.sub("", output))[:4]
        print("slowest pages: " + ", ".join(f"{page} {t:.0f} s" for page, t in slowest))
        for name, edit, page in [("nothing changed", None, ""),
                                 ("prose edit", edit_prose, PROSE_PAGE),
                                 ("code edit", edit_code, CODE_PAGE)]:
            seconds, note = rebuilds(clone_dir, logs, name.replace(" ", "-"), edit, args.repeats)
            rows.append(row(f"rebuild: {name}", seconds, REBUILD_GOAL, f"{page} {note}".strip()))
            print(rows[-1].strip(), flush=True)
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    print(f"\nmake book in a fresh clone; rebuilds: median of {args.repeats}")
    print(f"  {'step':<24s} {'seconds':>8s} {'goal':>6s} {'':>8s}  notes")
    print("\n".join(rows))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average at the end: {load}")


if __name__ == "__main__":
    main()
