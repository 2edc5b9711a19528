"""The environments agree: pyproject.toml, environment.yml (Binder) and requirements/lock.txt."""

import re
import tomllib

import yaml

from repo_paths import REPO

PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([A-Za-z0-9_.+\-]+)$")


def pins(lines):
    found = {}
    for line in lines:
        match = PIN.match(line.strip())
        if match:
            found[match.group(1).lower().replace("_", "-")] = match.group(2)
    return found


def pyproject():
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def test_every_runtime_dependency_is_pinned():
    deps = pyproject()["dependencies"] + pyproject()["optional-dependencies"]["test"]
    assert all(PIN.match(d) for d in deps), [d for d in deps if not PIN.match(d)]
    for name in ("jupyter-book", "jupyterlab", "nbgrader", "ipywidgets", "plotly", "numpy", "torch", "torchvision"):
        assert name in pins(pyproject()["dependencies"])
    assert pins(deps)["jupyter-book"].startswith("1.0.")  # version 2 downloads its theme at build time
    assert pins(deps)["nbgrader"].startswith("0.9.") and pins(deps)["jupyterlab"].startswith("4.")


def test_environment_yml_matches_pyproject():
    environment = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    assert pins(pip_section) == pins(pyproject()["dependencies"])
    assert "-e ." in pip_section  # installs cvprep and autograder themselves
    assert "python=3.11" in environment["dependencies"]
    assert pyproject()["requires-python"] == ">=3.11,<3.12"


def test_lock_file_agrees_with_pyproject():
    locked = pins((REPO / "requirements" / "lock.txt").read_text().splitlines())
    wanted = pins(pyproject()["dependencies"] + pyproject()["optional-dependencies"]["test"])
    assert {name: locked.get(name) for name in wanted} == wanted


def test_ci_runs_make_test():
    script = REPO / ".ci" / "run"
    assert script.stat().st_mode & 0o111, ".ci/run must be executable"
    assert "set -euo pipefail" in script.read_text() and "make test" in script.read_text()


def test_readme_gives_exactly_two_setup_commands():
    readme = (REPO / "README.md").read_text()
    setup = readme.split("## Set up", 1)[1].split("##", 1)[0]
    block = setup.split("```", 2)[1]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make book", "make test"]
