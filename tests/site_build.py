"""Build the site as `make book` does, once per test run, for every test that reads it.

Test files run in parallel (pytest-xdist), so builds into the same folder take a file
lock; the second builder finds nothing out of date and returns in seconds. Every build
shares one execution cache (book/_ext/execution_cache.py), so only edited pages execute.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from filelock import FileLock

from repo_paths import BOOK, REPO

SITE = REPO / "_build" / "html"
NO_SOLUTIONS_ROOT = REPO / "_build" / "without-solutions"  # `make book SOLUTIONS=0`, built beside the site
NO_SOLUTIONS_SITE = NO_SOLUTIONS_ROOT / "_build" / "html"


def release_exercises() -> None:
    release = subprocess.run([sys.executable, "-m", "autograder", "release", "--all", "--out", str(BOOK / "_exercises")],
                             cwd=REPO, capture_output=True, text=True)
    assert release.returncode == 0, release.stderr


def build(output_root: Path | None = None, solutions: bool = True) -> str:
    """Run jupyter-book; return its log. ``output_root`` None builds into _build/html."""
    command = [str(Path(sys.executable).parent / "jupyter-book"), "build", ".", "--builder", "html"]
    if output_root is not None:
        command += ["--path-output", str(output_root)]
    environment = {**os.environ, "CVPREP_SOLUTIONS": "1" if solutions else "0"}
    lock = FileLock(str(REPO / "_build" / ".build.lock"))
    (REPO / "_build").mkdir(exist_ok=True)
    with lock:
        release_exercises()
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=environment)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    return log


def toc_pages() -> list[str]:
    """Every page of _toc.yml, root first, as a path without suffix ("book/intro", ...)."""
    import yaml

    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    return [toc["root"]] + [entry["file"] for part in toc["parts"] for chapter in part["chapters"]
                            for entry in [chapter, *chapter.get("sections", [])]]
