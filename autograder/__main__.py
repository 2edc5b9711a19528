"""Command line: ``python -m autograder {release,workspace,sync} ...``."""

from __future__ import annotations

import argparse
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("release", help="generate the student version of assignments (no solutions, no hidden tests)")
    p.add_argument("assignment", nargs="*", help=f"assignment ids, e.g. {', '.join(course.assignments())}")
    p.add_argument("--all", action="store_true", help="release every assignment")
    p.add_argument("--out", default=str(course.REPO / "_build" / "release"), help="output folder (default: _build/release)")
    p.set_defaults(run=release)

    p = commands.add_parser("workspace", help="copy new student notebooks into a learner's folder (keeps existing work)")
    p.add_argument("--out", default="workspace", help="the learner's folder (default: workspace)")
    p.set_defaults(run=workspace)

    p = commands.add_parser("sync", help="copy the cvprep reference solutions into the exercise source notebooks")
    p.add_argument("--check", action="store_true", help="only report differences; exit 1 if there are any")
    p.set_defaults(run=sync)

    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
