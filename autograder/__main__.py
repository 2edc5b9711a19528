"""The cvprep grader: ``python -m autograder COMMAND``.

An instructor's term, in four commands:

  release ASSIGNMENT          the student version (no solutions, no hidden tests) to hand out
  grade ASSIGNMENT --submissions DIR --out DIR [--jobs N]
                              grade DIR/<student>/ASSIGNMENT/<notebook>.ipynb (nbgrader's
                              "submitted" layout); writes OUT/grades.csv (one row per student,
                              whatever happened to the file), OUT/feedback/<student>/ASSIGNMENT/
                              <notebook>.html, OUT/grader.log; run it again to grade only
                              new or changed submissions, or to finish a batch that was stopped
  feedback ASSIGNMENT --out DIR    render the feedback again (after manual grading)
  export ASSIGNMENT --out DIR      write grades.csv again from the gradebook

Run as root, student code runs as the unprivileged user cvprep-grader (created on first
use) in a private mount namespace where the exercise sources, the gradebook and other
students' submissions do not exist, under CPU, memory, file-size and process limits.
Otherwise grades.csv marks every row "graded-unisolated" and the log says why.

For learners: workspace (copy new exercises into your folder); for authors: sync.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from autograder import course, sources


@contextmanager
def student_versions(names: list[str]) -> Iterator[list[tuple[str, Path]]]:
    """Release each assignment into a throwaway course; yield (assignment, release folder) pairs."""
    with tempfile.TemporaryDirectory(prefix="cvprep-release-") as tmp:
        grader = course.Course(Path(tmp))
        yield [(name, grader.release(name)) for name in names]


def release(args: argparse.Namespace) -> int:
    names = course.assignments() if args.all else args.assignment
    if not names:
        print("name an assignment or pass --all", file=sys.stderr)
        return 2
    with student_versions(names) as released:
        for name, folder in released:
            target = Path(args.out) / name
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(folder, target)
            print(f"released {name} -> {target}")
    return 0


def workspace(args: argparse.Namespace) -> int:
    """Copy each student notebook into the learner's workspace, never overwriting their work."""
    with student_versions(course.assignments()) as released:
        for name, folder in released:
            for notebook in sorted(folder.glob("*.ipynb")):
                target = Path(args.out) / name / notebook.name
                if target.exists():
                    print(f"kept your {target}")
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(notebook, target)
                print(f"new exercise: {target}")
    return 0


def sync(args: argparse.Namespace) -> int:
    changes = sources.sync_all(course.EXERCISES, write=not args.check)
    for change in changes:
        verb = "differs from" if args.check else "updated from"
        print(f"{change.notebook}: cell {change.cell_id} {verb} {change.reference}")
    if args.check and changes:
        print("run `python -m autograder sync` to copy the cvprep solutions into the notebooks", file=sys.stderr)
        return 1
    if not changes:
        print("exercise notebooks match cvprep")
    return 0


def _options(args: argparse.Namespace):
    from autograder import batch, sandbox

    limits = sandbox.Limits(cpu_seconds=args.cpu_seconds, memory_bytes=int(args.memory_gb * 2**30))
    return batch.Options(timeout=args.timeout, limits=limits, max_output_chars=args.max_output_chars,
                         book_url=args.book_url)


def grade(args: argparse.Namespace) -> int:
    from autograder import batch

    results = batch.grade(args.assignment, Path(args.submissions), Path(args.out), jobs=args.jobs,
                          force=args.force, options=_options(args))
    failed = [r.student for r in results if r.status == "failed"]
    if failed:
        print(f"the grader itself failed on {len(failed)} submission(s): {', '.join(failed)}; see the log",
              file=sys.stderr)
        return 1
    return 0


def _graded_rows(args: argparse.Namespace):
    """The saved results, their scores read again from the gradebook (where manual grades live)."""
    from autograder import batch

    course._put_environment_on_path()
    grading = batch.Batch(args.assignment, Path(args.out) / "nbgrader", Path(args.out), _options(args))
    results = [r for s in sorted(p.stem for p in grading.results.glob("*.json")) if (r := grading.previous(s))]
    if not results:
        raise SystemExit(f"nothing graded in {args.out} yet: run `python -m autograder grade` first")
    grader = grading.course()
    for result in results:
        if result.status.startswith("graded"):
            result.scores = {g.grade_id: g.score for g in grader.grades(grading.assignment, result.student)}
    return grading, grader, results


def export(args: argparse.Namespace) -> int:
    from autograder import batch

    grading, _, results = _graded_rows(args)
    batch.write_csv(grading, results, grading.out / "grades.csv")
    print(f"wrote {grading.out / 'grades.csv'} ({len(results)} students)")
    return 0


def feedback(args: argparse.Namespace) -> int:
    from autograder import batch

    grading, grader, results = _graded_rows(args)
    for result in results:
        if result.status.startswith("graded"):
            batch.write_feedback(grading, grader, result)
            print(f"feedback for {result.student}")
    return 0


def _grading_arguments(p: argparse.ArgumentParser) -> None:
    from autograder import batch, sandbox

    p.add_argument("assignment", help=f"assignment id, e.g. {', '.join(course.assignments())}")
    p.add_argument("--out", required=True, help="the grader's folder: grades.csv, feedback/, grader.log, nbgrader/")
    p.add_argument("--timeout", type=int, default=batch.Options.timeout, help="seconds one cell may run (default %(default)s)")
    p.add_argument("--cpu-seconds", type=int, default=sandbox.Limits.cpu_seconds,
                   help="CPU seconds one submission's kernel may use in all (default %(default)s)")
    p.add_argument("--memory-gb", type=float, default=sandbox.Limits.memory_bytes / 2**30,
                   help="address space of one kernel in GiB (default %(default)s)")
    p.add_argument("--max-output-chars", type=int, default=batch.Options.max_output_chars,
                   help="characters of output kept per cell (default %(default)s)")
    p.add_argument("--book-url", default=batch.DEFAULT_BOOK_URL,
                   help="where students read the book; feedback links failed parts to its sections "
                        "(default: the local build, %(default)s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("release", help="generate the student version of assignments (no solutions, no hidden tests)")
    p.add_argument("assignment", nargs="*", help=f"assignment ids, e.g. {', '.join(course.assignments())}")
    p.add_argument("--all", action="store_true", help="release every assignment")
    p.add_argument("--out", default=str(course.REPO / "_build" / "release"), help="output folder (default: _build/release)")
    p.set_defaults(run=release)

    p = commands.add_parser("grade", help="grade a folder of submissions: grades.csv, feedback, log")
    _grading_arguments(p)
    p.add_argument("--submissions", required=True, help="folder of <student>/<assignment>/<notebook>.ipynb")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="submissions graded at once (default: the number of cores, here %(default)s)")
    p.add_argument("--force", action="store_true", help="regrade every submission, even unchanged ones")
    p.set_defaults(run=grade)

    p = commands.add_parser("feedback", help="render the feedback again from the gradebook (e.g. after manual grading)")
    _grading_arguments(p)
    p.set_defaults(run=feedback)

    p = commands.add_parser("export", help="write grades.csv again from the gradebook (e.g. after manual grading)")
    _grading_arguments(p)
    p.set_defaults(run=export)

    p = commands.add_parser("workspace", help="copy new student notebooks into a learner's folder (keeps existing work)")
    p.add_argument("--out", default="workspace", help="the learner's folder (default: workspace)")
    p.set_defaults(run=workspace)

    p = commands.add_parser("sync", help="copy the cvprep reference solutions into the exercise source notebooks")
    p.add_argument("--check", action="store_true", help="only report differences; exit 1 if there are any")
    p.set_defaults(run=sync)

    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except ValueError as error:  # bad arguments: say what is wrong, without a traceback
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
