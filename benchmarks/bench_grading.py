"""Grading throughput: ``python -m autograder grade`` against plain ``nbgrader`` on the
same submissions. (A benchmark, not a test.)

Builds N submissions of exercise 01 from the test corpus (correct ones and ones with a
wrong part, a raised error or a syntax error; no time-outs), then times, in one run:

* nbgrader's own command line, as an instructor would use it on the same course:
  ``nbgrader autograde`` and then ``nbgrader generate_feedback`` (unsandboxed, no
  prescreening, no guard);
* ``python -m autograder grade --jobs J`` (prescreening, sandbox, guard, feedback).

Both are measured end to end (process start-up included) and reported as submissions
per minute. It also reports the grader's per-submission overhead: the mean time one
submission takes with ``--jobs 1`` minus the time its cells take in a warm kernel.

    .venv/bin/python benchmarks/bench_grading.py [--students 40] [--jobs 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "autograder" / "tests"))

from corpus import correct, one_part_wrong, raises, syntax_error  # noqa: E402

ASSIGNMENT = "01-convolution"
KINDS = [correct, one_part_wrong, raises, syntax_error]


def run(command: list[str], **kwargs) -> float:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, text=True, env=env, **kwargs)
    return time.perf_counter() - start


def write_submissions(release: Path, folder: Path, students: int) -> Path:
    for i in range(students):
        build = KINDS[i % len(KINDS)]
        target = folder / f"student{i:03d}" / ASSIGNMENT
        target.mkdir(parents=True)
        nbformat.write(build(release), target / release.name)
    return folder


def nbgrader_cli(submissions: Path, root: Path) -> tuple[float, float]:
    config_folder = REPO / "autograder"  # nbgrader reads nbgrader_config.py from where it runs
    common = [f"--CourseDirectory.root={root}",
              f"--CourseDirectory.db_url=sqlite:///{root / 'gradebook.db'}", f"--Exchange.root={root / 'exchange'}"]
    (root / "exchange").mkdir(parents=True)
    nbgrader = [sys.executable, "-m", "nbgrader"]
    run([*nbgrader, "generate_assignment", ASSIGNMENT, "--force", *common], cwd=config_folder)
    shutil.copytree(submissions, root / "submitted")
    autograde = run([*nbgrader, "autograde", ASSIGNMENT, *common], cwd=config_folder)
    feedback = run([*nbgrader, "generate_feedback", ASSIGNMENT, *common], cwd=config_folder)
    return autograde, feedback


def ours(submissions: Path, out: Path, jobs: int) -> tuple[float, list[float]]:
    seconds = run([sys.executable, "-m", "autograder", "grade", ASSIGNMENT, "--submissions", str(submissions),
                   "--out", str(out), "--jobs", str(jobs)])
    per_student = [json.loads(p.read_text())["seconds"] for p in (out / "results").glob("*.json")]
    return seconds, per_student


async def _cell_seconds(notebooks: list[Path]) -> list[float]:
    """Time each notebook's cells in a kernel that is already running (the student's own cost)."""
    from jupyter_client.manager import AsyncKernelManager

    times = []
    for path in notebooks:
        km = AsyncKernelManager(kernel_name="python3")
        await km.start_kernel()
        kc = km.client()
        kc.start_channels()
        await kc.wait_for_ready()
        start = time.perf_counter()
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                await kc.execute_interactive(cell.source, timeout=60, output_hook=lambda msg: None)
        times.append(time.perf_counter() - start)
        kc.stop_channels()
        await km.shutdown_kernel(now=True)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=40)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        tmp = Path(tmp)
        run([sys.executable, "-m", "autograder", "release", ASSIGNMENT, "--out", str(tmp / "release")])
        release = tmp / "release" / ASSIGNMENT / "convolution.ipynb"
        submissions = write_submissions(release, tmp / "submissions", args.students)

        autograde, feedback = nbgrader_cli(submissions, tmp / "nbgrader-cli")
        ours_seconds, _ = ours(submissions, tmp / "ours", args.jobs)
        sample = sorted(submissions.iterdir())[: min(8, args.students)]
        for student in sample:
            shutil.copytree(student, tmp / "sample" / student.name)
        _, per_student = ours(tmp / "sample", tmp / "ours-serial", 1)
        cells = asyncio.run(_cell_seconds([s / ASSIGNMENT / release.name for s in sample]))

    n = args.students
    rate = lambda seconds: 60 * n / seconds  # noqa: E731
    print(f"{n} submissions of {ASSIGNMENT}, {os.cpu_count()} cores")
    print(f"  nbgrader autograde (CLI)                    {autograde:6.1f} s  {rate(autograde):6.1f} per minute")
    print(f"  nbgrader autograde + generate_feedback      {autograde + feedback:6.1f} s  "
          f"{rate(autograde + feedback):6.1f} per minute")
    print(f"  python -m autograder grade --jobs {args.jobs} (+feedback) {ours_seconds:6.1f} s  "
          f"{rate(ours_seconds):6.1f} per minute")
    print(f"  speed-up over nbgrader autograde alone:     {autograde / ours_seconds:.2f}x")
    print(f"  speed-up over nbgrader autograde + feedback: {(autograde + feedback) / ours_seconds:.2f}x")
    mean_total = sum(per_student) / len(per_student)
    mean_cells = sum(cells) / len(cells)
    print(f"  per submission with --jobs 1: {mean_total:.2f} s, of which the student's cells "
          f"{mean_cells:.2f} s: overhead {mean_total - mean_cells:.2f} s")


if __name__ == "__main__":
    main()
