"""The environments agree: pyproject.toml, environment.yml + postBuild (Binder), requirements/lock.txt, Makefile."""

import json
import posixpath
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tomllib

import pytest
import yaml

from repo_paths import REPO

PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([A-Za-z0-9_.+\-]+)$")
# A conda spec that fixes the version: `name==version`, or `name=version=build` (with a
# build string conda matches the version exactly; a bare `name=version` would mean version.*).
CONDA_PIN = re.compile(r"^([A-Za-z0-9_.\-]+)(?:==([^=\s]+)|=([^=\s]+)=(\S+))$")
# Where conda-forge's name differs from the PyPI one.
CONDA_TO_PYPI = {"pytorch": "torch", "pytorch-cpu": "torch"}
LAB_OVERRIDES = "requirements/jupyterlab-overrides.json"


def normalized(name):
    return name.lower().replace("_", "-")


def pins(lines):
    found = {}
    for line in lines:
        match = PIN.match(line.strip())
        if match:
            found[normalized(match.group(1))] = match.group(2)
    return found


def pyproject():
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def environment_yml():
    return yaml.safe_load((REPO / "environment.yml").read_text())


def conda_specs():
    return [d for d in environment_yml()["dependencies"] if isinstance(d, str)]


def pip_section():
    return next((d["pip"] for d in environment_yml()["dependencies"] if isinstance(d, dict)), [])


def conda_pins():
    """PyPI name -> (version, build string or None), for each conda spec that pins a version."""
    found = {}
    for spec in conda_specs():
        match = CONDA_PIN.match(spec)
        if match:
            name, exact, version, build = match.groups()
            found[CONDA_TO_PYPI.get(normalized(name), normalized(name))] = (exact or version, build)
    return found


def test_every_runtime_dependency_is_pinned():
    deps = pyproject()["dependencies"] + pyproject()["optional-dependencies"]["test"]
    assert all(PIN.match(d) for d in deps), [d for d in deps if not PIN.match(d)]
    for name in ("jupyter-book", "jupyterlab", "nbgrader", "ipywidgets", "plotly", "numpy", "torch", "torchvision"):
        assert name in pins(pyproject()["dependencies"])
    assert pins(deps)["jupyter-book"].startswith("1.0.")  # version 2 downloads its theme at build time
    assert pins(deps)["nbgrader"].startswith("0.9.") and pins(deps)["jupyterlab"].startswith("4.")


def test_environment_yml_matches_pyproject():
    # Each runtime pin of pyproject, at the same version, from conda-forge or from the pip section.
    provided = {name: version for name, (version, _) in conda_pins().items()} | pins(pip_section())
    wanted = pins(pyproject()["dependencies"])
    assert {name: provided.get(name) for name in wanted} == wanted
    assert "python=3.11" in environment_yml()["dependencies"]
    assert pyproject()["requires-python"] == ">=3.11,<3.12"


def test_environment_yml_does_not_install_the_repository():
    # repo2docker installs environment.yml before the repository is copied in: postBuild does it.
    local = [line for line in pip_section() if line.strip().split()[-1] in (".", "./")]
    assert not local, local


def test_torch_is_the_cpu_only_conda_forge_build():
    assert environment_yml()["channels"] == ["conda-forge"]
    for name in ("torch", "torchvision"):
        assert name not in pins(pip_section()), f"{name} from pip would be the CUDA build"
        _, build = conda_pins()[name]
        assert build is not None and build.startswith("cpu"), f"{name}: build {build!r} is not CPU-only"


def test_lock_file_agrees_with_pyproject():
    locked = pins((REPO / "requirements" / "lock.txt").read_text().splitlines())
    wanted = pins(pyproject()["dependencies"] + pyproject()["optional-dependencies"]["test"])
    assert {name: locked.get(name) for name in wanted} == wanted


def release_command(path, interpreter):
    """The arguments after the interpreter of the one `-m autograder release` command in a script."""
    lines = [line for line in path.read_text().splitlines()
             if "-m autograder release" in line and not line.lstrip().startswith("#")]
    assert len(lines) == 1, f"{path.name}: {lines}"
    words = shlex.split(lines[0])
    assert words[0] == interpreter, f"{path.name} runs {words[0]}"
    return words[1:]


def postbuild_release_command():
    return release_command(REPO / "postBuild", "python")  # the environment's python is first on PATH


def test_postbuild_does_what_the_makefile_does():
    postbuild = REPO / "postBuild"
    assert postbuild.stat().st_mode & stat.S_IXUSR, "repo2docker runs postBuild only if it is executable"
    assert postbuild.read_text().startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in postbuild.read_text()  # a failing step must fail the Binder build
    assert postbuild_release_command() == release_command(REPO / "Makefile", "$(BIN)/python")
    assert LAB_OVERRIDES in postbuild.read_text()
    # Either folder would make repo2docker ignore environment.yml and postBuild at the root.
    assert not (REPO / "binder").exists() and not (REPO / ".binder").exists()


def test_lab_settings_are_written_once():
    # Makefile and postBuild copy the same committed file instead of each spelling the JSON.
    settings = json.loads((REPO / LAB_OVERRIDES).read_text())
    viewers = settings["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]
    assert viewers == {"markdown": "Jupytext Notebook"}
    makefile = (REPO / "Makefile").read_text()
    assert LAB_OVERRIDES in makefile and "defaultViewers" not in makefile


FAKE_PYTHON = """#!/bin/sh
# pip only records its arguments (the test needs no network); anything else is the real interpreter.
if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then echo "$@" >> "$PIP_LOG"; exit 0; fi
exec {python} "$@"
"""


@pytest.fixture(scope="module")
def binder_build(tmp_path_factory):
    """postBuild run in a copy of the files it uses, with a recording pip and a throwaway JupyterLab folder."""
    root = tmp_path_factory.mktemp("binder")
    repo = root / "repo"
    for folder in ("autograder", "exercises"):
        shutil.copytree(REPO / folder, repo / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("postBuild", LAB_OVERRIDES, "pyproject.toml"):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, repo / name)
    fake_bin = root / "bin"
    fake_bin.mkdir()
    (fake_bin / "python").write_text(FAKE_PYTHON.format(python=shlex.quote(sys.executable)))
    (fake_bin / "python").chmod(0o755)
    env = {"PATH": f"{fake_bin}:/usr/bin:/bin", "HOME": str(root), "PIP_LOG": str(root / "pip.log"),
           "JUPYTERLAB_DIR": str(root / "lab")}  # JupyterLab's application folder, normally <prefix>/share/jupyter/lab
    result = subprocess.run([repo / "postBuild"], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return {"repo": repo, "pip": (root / "pip.log").read_text().splitlines(), "lab": root / "lab"}


def test_postbuild_installs_only_the_package(binder_build):
    assert len(binder_build["pip"]) == 1
    args = binder_build["pip"][0].split()
    assert args[:3] == ["-m", "pip", "install"] and "--no-deps" in args
    assert args[-2:] == ["-e", "."]  # editable: autograder finds exercises/ next to its source


def released_folder():
    command = postbuild_release_command()
    return command[command.index("--out") + 1]


def test_postbuild_releases_every_exercise(binder_build):
    # exercises/<id>/<name>.ipynb -> <out>/<id>/<name>.ipynb, the paths _toc.yml and Binder links use
    out = binder_build["repo"] / released_folder()
    sources = sorted(p.relative_to(REPO / "exercises") for p in (REPO / "exercises").glob("*/*.ipynb"))
    assert sources and sorted(p.relative_to(out) for p in out.glob("*/*.ipynb")) == sources


def test_postbuild_installs_the_lab_settings(binder_build):
    installed = binder_build["lab"] / "settings" / "overrides.json"
    assert json.loads(installed.read_text()) == json.loads((REPO / LAB_OVERRIDES).read_text())


def git(*args):
    result = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
    return result.stdout.strip() if result.returncode == 0 else None


def default_branch():
    """The remote's default branch if there is a remote; otherwise the checked-out one (a fresh clone's default)."""
    remote_head = git("symbolic-ref", "--short", "refs/remotes/origin/HEAD")
    if remote_head:
        return remote_head.removeprefix("origin/")
    return git("symbolic-ref", "--short", "HEAD")


def binder_url(config, page):
    """The launch URL sphinx-book-theme builds for a GitHub repository (header_buttons/launch.py)."""
    org, name = config["repository"]["url"].removeprefix("https://github.com/").split("/")
    folder = config["repository"].get("path_to_book", "").strip("/")
    path = f"{folder}/{page}" if folder else page
    interface = {"classic": "tree", "jupyterlab": "lab/tree"}[config["launch_buttons"]["notebook_interface"]]
    hub = config["launch_buttons"]["binderhub_url"].strip("/")
    return f"{hub}/v2/gh/{org}/{name}/{config['repository']['branch']}?urlpath={interface}/{path}"


def toc_pages():
    """Each page of the book as the theme names its source: .md if the repository has one, else .ipynb."""
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc["parts"]:
        for chapter in part["chapters"]:
            files += [chapter["file"]] + [section["file"] for section in chapter.get("sections", [])]
    return [f"{file}.md" if (REPO / f"{file}.md").exists() else f"{file}.ipynb" for file in files]


def test_binder_launches_the_default_branch():
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    assert config["repository"]["url"].startswith("https://github.com/")
    branch = default_branch()
    if branch is None:
        pytest.skip("detached HEAD and no origin: the default branch is unknown")
    assert config["repository"]["branch"] == branch


def test_binder_links_open_files_the_image_has(binder_build):
    # Chapter pages are committed; exercise pages exist once postBuild has released them.
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    pages = toc_pages()
    assert any(page.endswith(".md") for page in pages) and any("_exercises" in page for page in pages)
    for page in pages:
        url = binder_url(config, page)
        path = posixpath.normpath(url.split("?urlpath=", 1)[1].split("/", 2)[2])  # after lab/tree/
        # Generated pages are looked for in postBuild's output only (the checkout may hold stale ones).
        generated = path.startswith(released_folder().rstrip("/") + "/")
        assert ((binder_build["repo"] if generated else REPO) / path).is_file(), url


def test_ci_runs_make_test():
    script = REPO / ".ci" / "run"
    assert script.stat().st_mode & 0o111, ".ci/run must be executable"
    assert "set -euo pipefail" in script.read_text() and "make test" in script.read_text()
    # the browser tests must run in CI, not skip: it installs Debian's Chromium first
    assert "apt-get install" in script.read_text() and "chromium" in script.read_text()
    assert "playwright install" not in script.read_text()


def test_readme_gives_exactly_two_setup_commands():
    readme = (REPO / "README.md").read_text()
    setup = readme.split("## Set up", 1)[1].split("##", 1)[0]
    block = setup.split("```", 2)[1]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make book", "make test"]
