"""JupyterLab as a learner gets it from `make lab`, driven in a real browser (Chromium).

The venv's JupyterLab is started on a copy of chapter 01's student notebook, released by
the autograder exactly as learners receive it, and on a solved copy of it. The test checks
that

* *Run → Run All Cells* on the untouched notebook draws the try-it widget (its sliders
  call the learner's ``conv_output_size`` and show its ``NotImplementedError`` instead of
  failing the cell), and that the page asks nothing of any host but 127.0.0.1;
* nbgrader's **Validate** button (its lab extension and its ``validate_assignment`` server
  extension) reports success on the solved copy, and every test failed on the untouched one;
* with the committed JupyterLab settings (requirements/jupyterlab-overrides.json), a
  chapter's MyST page opens as a notebook, as a Binder link opens it.

A screenshot of the widget after Run All goes to _build/screenshots/. Without Chromium the
tests are skipped (tests/browser.py says how to get it); any other problem fails them.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

from autograder.__main__ import student_versions
from browser import PageWatch, free_port, launched_chromium, require_chromium
from repo_paths import REPO

# The grading tests already fill a release with the reference solutions (corpus.filled); they
# import one another as top-level modules, so their folder must be importable from here too.
GRADING_TESTS = REPO / "autograder" / "tests"
if str(GRADING_TESTS) not in sys.path:
    sys.path.insert(0, str(GRADING_TESTS))
from corpus import PARTS, filled  # noqa: E402

pytestmark = pytest.mark.slow

ASSIGNMENT = "01-convolution"
UNTOUCHED = "convolution.ipynb"  # the name learners see
SOLVED = "solved.ipynb"
SCREENSHOT = REPO / "_build" / "screenshots" / "jupyterlab-01-convolution.png"
CHAPTER_PAGE = Path("book") / "06-detection" / "nms.md"  # what a Binder link opens
SLIDERS = ["size", "kernel_size", "stride", "padding", "dilation"]
KERNEL_IDLE = re.compile(r"^Python 3 \(ipykernel\) \| Idle$")

SERVER_START_SECONDS = 60
KERNEL_TIMEOUT_MS = 30_000  # Playwright counts in milliseconds
VALIDATE_TIMEOUT_MS = 60_000  # nbgrader runs the whole notebook in a fresh kernel


@dataclass(frozen=True)
class Lab:
    url: str
    token: str

    def tree_url(self, notebook: str, workspace: str) -> str:
        # A workspace per test, so that JupyterLab does not reopen another test's notebooks.
        return f"{self.url}/lab/workspaces/{workspace}/tree/{notebook}?token={self.token}"


# ---------------------------------------------------------------- the notebooks


def write_notebooks(root: Path) -> None:
    """The student notebook as released, a copy with every solution region filled in, and a chapter page."""
    with student_versions([ASSIGNMENT]) as [(_, folder)]:
        release = folder / UNTOUCHED
        shutil.copyfile(release, root / UNTOUCHED)
        nbformat.write(filled(release), root / SOLVED)
    shutil.copyfile(REPO / CHAPTER_PAGE, root / CHAPTER_PAGE.name)


def lab_settings(home: Path) -> Path:
    """JupyterLab's settings folder with the committed overrides, as make lab and postBuild install them."""
    folder = home / "lab-settings"
    folder.mkdir()
    shutil.copyfile(REPO / "requirements" / "jupyterlab-overrides.json", folder / "overrides.json")
    return folder


# ---------------------------------------------------------------- the server


def isolated_environment(home: Path) -> dict[str, str]:
    """The learner's own Jupyter and IPython settings stay out; the venv's extensions stay in.

    Jupyter always searches sys.prefix/etc/jupyter and sys.prefix/share/jupyter as well, which
    is where pip put nbgrader's, ipywidgets' and jupytext's extensions.
    """
    env = dict(os.environ)
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        folder = home / name.lower()
        folder.mkdir()
        env[name] = str(folder)
    env.pop("JUPYTER_PATH", None)
    env.pop("JUPYTER_CONFIG_PATH", None)
    # As in the Makefile: what the server starts (kernels) comes from the venv.
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def lab_command(port: int, token: str, root: Path, settings: Path) -> list[str]:
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={root}", f"--LabApp.app_settings_dir={settings}"]
    if os.geteuid() == 0:  # as in the Makefile: containers often run as root
        command.append("--allow-root")
    return command


def wait_until_answering(process: subprocess.Popen, url: str, token: str, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"JupyterLab exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        request = urllib.request.Request(f"{url}/api/status", headers={"Authorization": f"token {token}"})
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass  # not listening yet
        time.sleep(0.2)
    pytest.fail(f"JupyterLab did not answer within {SERVER_START_SECONDS} s:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen) -> None:
    """SIGTERM lets the server shut its kernels down (they run in sessions of their own); then SIGKILL."""
    for sig, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Iterator[Lab]:
    require_chromium()  # before spending seconds on a server nobody can look at
    root = tmp_path_factory.mktemp("lab-root")
    write_notebooks(root)
    home = tmp_path_factory.mktemp("lab-home")
    port, token = free_port(), secrets.token_hex(16)
    url = f"http://127.0.0.1:{port}"
    log = home / "jupyterlab.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(lab_command(port, token, root, lab_settings(home)), cwd=root, env=isolated_environment(home),
                                   stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # its own process group, killed as one
    try:
        wait_until_answering(process, url, token, log)
        yield Lab(url, token)
    finally:
        stop(process)


# ---------------------------------------------------------------- the browser


@pytest.fixture(scope="module")
def browser():
    with launched_chromium() as chromium:
        yield chromium


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        yield context.new_page()
    finally:
        context.close()


def open_notebook(page, lab: Lab, notebook: str, workspace: str) -> PageWatch:
    """Open ``notebook`` in JupyterLab and wait for its kernel; the watch records every request."""
    watch = PageWatch(page)
    page.goto(lab.tree_url(notebook, workspace))
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-Cell", timeout=KERNEL_TIMEOUT_MS)
    # The status bar names the kernel once it is connected; the toolbar's indicator already says
    # "idle" before the kernel starts, and cells run then are silently not run.
    page.locator(".jp-StatusBar-Widget").get_by_text(KERNEL_IDLE).wait_for(timeout=KERNEL_TIMEOUT_MS)
    return watch


def run_all_cells(page) -> None:
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()


def validation_message(page) -> tuple[str, str]:
    """Press nbgrader's Validate; return the dialog's verdict (its CSS class) and its text."""
    page.locator(".jp-NotebookPanel-toolbar .validate-button").click()
    message = page.wait_for_selector("#validation-message", timeout=VALIDATE_TIMEOUT_MS)
    verdict = next(c for c in message.get_attribute("class").split() if c.startswith("validation-"))
    return verdict, message.inner_text()


def assert_clean(watch: PageWatch) -> None:
    assert watch.problems() == {"outside 127.0.0.1": [], "failed": [], "console errors": []}


# ---------------------------------------------------------------- the tests


def test_run_all_draws_the_try_it_widget_and_stays_local(lab, page):
    from playwright.sync_api import expect

    watch = open_notebook(page, lab, UNTOUCHED, "run-all")
    run_all_cells(page)
    widget = page.wait_for_selector(".jp-OutputArea-output .widget-interact", state="attached",
                                    timeout=KERNEL_TIMEOUT_MS)
    widget.scroll_into_view_if_needed()  # Run All leaves the notebook scrolled to its last cell
    # the box is attached before its sliders are drawn: wait for their labels
    labels = page.locator(".widget-interact .widget-slider .widget-label")
    expect(labels).to_have_text(SLIDERS, timeout=KERNEL_TIMEOUT_MS)
    # interact catches the stub's exception and shows it under the sliders: the cell itself passes
    page.wait_for_selector(".widget-interact .jp-OutputArea-output:has-text('NotImplementedError')",
                           timeout=KERNEL_TIMEOUT_MS)
    widget.scroll_into_view_if_needed()  # again: drawing the sliders moved it
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))
    assert_clean(watch)


def test_validate_passes_the_solved_notebook(lab, page):
    watch = open_notebook(page, lab, SOLVED, "validate-solved")
    verdict, text = validation_message(page)
    assert verdict == "validation-success", text
    assert "passes all the tests" in text
    assert_clean(watch)


def test_validate_fails_the_untouched_notebook(lab, page):
    watch = open_notebook(page, lab, UNTOUCHED, "validate-untouched")
    verdict, text = validation_message(page)
    assert verdict == "validation-failed", text
    # nbgrader runs every cell (allow_errors) and lists each failed test: here all of them
    assert text.count("The following cell failed") == sum(len(tests) for tests in PARTS.values()), text
    assert "NotImplementedError" in text
    assert_clean(watch)


def test_a_chapter_page_opens_as_a_notebook(page, lab):
    """A Binder link or `make lab` opens a chapter's MyST page (.md) as a notebook, through jupytext."""
    watch = PageWatch(page)
    page.goto(lab.tree_url(CHAPTER_PAGE.name, "chapter-page"))
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook .jp-CodeCell", timeout=KERNEL_TIMEOUT_MS)
    assert page.locator(".jp-FileEditor").count() == 0, "opened as a text file, not as a notebook"
    assert {kind: found for kind, found in watch.problems().items() if found} == {}
