"""The command line: release and workspace (sync --check is in test_sources.py)."""

import subprocess
import sys

import nbformat

from autograder import course


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "autograder", *args], capture_output=True, text=True, cwd=cwd)


def test_help_lists_the_commands():
    result = run("--help")
    assert result.returncode == 0
    for command in ("release", "workspace", "sync"):
        assert command in result.stdout


def test_release_and_workspace_from_any_directory(tmp_path):
    # release writes the student version wherever --out says
    result = run("release", "01-convolution", "--out", str(tmp_path / "release"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    released = tmp_path / "release" / "01-convolution" / "convolution.ipynb"
    assert "raise NotImplementedError()" in released.read_text()

    # workspace adds new exercises but never overwrites a learner's work
    mine = tmp_path / "workspace" / "01-convolution" / "convolution.ipynb"
    mine.parent.mkdir(parents=True)
    mine.write_text(released.read_text().replace("# YOUR CODE HERE", "# my work in progress"))
    result = run("workspace", "--out", str(tmp_path / "workspace"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "kept your" in result.stdout
    assert "my work in progress" in mine.read_text()
    nbformat.validate(nbformat.read(mine, as_version=4))


def test_release_refuses_an_unknown_assignment(tmp_path):
    result = run("release", "99-nothing", "--out", str(tmp_path))
    assert result.returncode != 0
    assert "unknown assignment '99-nothing'" in result.stderr
    assert "99-nothing" not in course.assignments()
    assert not (course.EXERCISES / "99-nothing").exists() and not (tmp_path / "99-nothing").exists()
