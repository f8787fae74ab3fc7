"""Debian's Chromium for the page tests: where it is, the flags every test launches it with,
and a launch that fails (never skips) when it is missing. One sync Playwright per module: two
cannot run in one thread at once, so each module starts and stops its own. Also the steps the
page tests share: a `boxer web` directory served as any static host would, and a run of the
page's form as a user presses Run."""
from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


@contextmanager
def chromium(*extra_args: str) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is not installed: run `make system`")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, *extra_args])
        try:
            yield browser
        finally:
            browser.close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


class StaticSite:
    """A directory (what `boxer web -o DIR` wrote) served by Python's plain static server on
    127.0.0.1, as any static host would serve it; `url` ends with /."""

    def __init__(self, directory: Path):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(directory)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> StaticSite:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def press_run(page: Page, command: str, stdin: str, timeout_ms: int) -> dict:
    """Once Run is enabled, type `command` and `stdin` into the form and press Run, as a user
    does; the run's record (the next of window.boxer.runs) once it is done."""
    page.wait_for_selector("#run:not([disabled])", timeout=timeout_ms)
    count = page.evaluate("() => window.boxer.runs.length")
    page.fill("#command", command)
    page.fill("#stdin", stdin)
    page.click("#run")
    page.wait_for_function("n => window.boxer.runs.length === n + 1 && window.boxer.runs[n].done", arg=count,
                           timeout=timeout_ms)
    return page.evaluate("n => window.boxer.runs[n]", count)
