"""A real browser for the site and JupyterLab tests: Playwright driving Debian's Chromium.

Playwright's own browser download (``playwright install``) is never used: CI installs
Debian's ``chromium`` package (.ci/run) and the tests launch ``/usr/bin/chromium``. Where
it is absent, the browser tests are skipped with a message that says how to get it.
"""

from __future__ import annotations

import functools
import http.server
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

CHROMIUM = Path(os.environ.get("CVPREP_CHROMIUM", "/usr/bin/chromium"))

# Without the background-networking flags Chromium keeps calling Google's hosts, which a
# closed network refuses; the sandbox needs user namespaces that containers often lack.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

# The theme's known complaints, on every page: sphinx-book-theme 1.3 and sphinx-thebe both
# declare THEBE_JS_URL, and pydata-sphinx-theme logs an empty stored dark/light mode.
KNOWN_CONSOLE_ERRORS = ("THEBE_JS_URL", "Got invalid theme mode")


def require_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"browser tests need Chromium at {CHROMIUM}: `apt-get install chromium` "
                    "(.ci/run does this), or set CVPREP_CHROMIUM to another Chromium binary")


@contextmanager
def launched_chromium() -> Iterator[object]:
    """A headless Chromium browser (playwright.sync_api.Browser)."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


@contextmanager
def serve_directory(root: Path) -> Iterator[str]:
    """Serve ``root`` on 127.0.0.1 (a free port) for the duration; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class PageWatch:
    """Records what a page asked for and complained about while a test drives it.

    Requests to any host but 127.0.0.1 are aborted (the site must work offline) and
    recorded, as are failed requests, HTTP errors and console errors.
    """

    def __init__(self, page) -> None:
        self.page = page
        self.outside: list[str] = []
        self.failed: list[str] = []
        self.console_errors: list[str] = []
        page.route("**/*", self._route)
        page.on("requestfailed", lambda r: self.failed.append(f"{r.url} ({r.failure})"))
        page.on("response", self._response)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self._error(f"uncaught: {error}"))

    def _route(self, route) -> None:
        url = route.request.url
        host = urlsplit(url).hostname
        if url.startswith(("data:", "blob:", "about:")) or host == "127.0.0.1":
            route.continue_()
        else:
            self.outside.append(url)
            route.abort()

    def _response(self, response) -> None:
        if response.status >= 400:
            self.failed.append(f"{response.url} (HTTP {response.status})")

    def _console(self, message) -> None:
        if message.type == "error":
            self._error(message.text)

    def _error(self, text: str) -> None:
        if not any(known in text for known in KNOWN_CONSOLE_ERRORS):
            self.console_errors.append(text)

    def problems(self) -> dict[str, list[str]]:
        """Everything that went wrong, by kind (empty lists when the page is clean)."""
        # a request aborted because it left 127.0.0.1 also reports as failed: count it once
        failed = [f for f in self.failed if not any(f.startswith(o) for o in self.outside)]
        return {"outside 127.0.0.1": self.outside, "failed": failed, "console errors": self.console_errors}
