"""The page's terminal as the guest's stdin, in real headless Chromium: keys typed into xterm
reach a Python REPL or a script's input(), edited as a terminal's line discipline does.

`boxer serve` sends COOP + COEP, so the page is cross-origin isolated and its worker can block
on a SharedArrayBuffer until a line is typed; a plain static host without those headers gets
the form's stdin only (the last test).
"""
from __future__ import annotations

import pytest

from boxer_py.browser import site
from test_web import RUN_TIMEOUT_MS, Page, _static_server


@pytest.fixture
def page(browser, hello_image):
    server = site.serve(hello_image, "127.0.0.1", 0)
    tab = Page(browser, server.url, autorun=False)
    yield tab
    tab.close()
    server.close()


def start(page: Page, command: str) -> None:
    page.page.wait_for_selector("#run:not([disabled])", timeout=RUN_TIMEOUT_MS)
    page.page.fill("#command", command)
    page.page.click("#run")
    page.wait_state("running")


def wait_terminal(page: Page, text: str) -> None:
    page.page.wait_for_function("t => document.querySelector('.xterm-rows').innerText.includes(t)", arg=text,
                                timeout=RUN_TIMEOUT_MS)


def type_line(page: Page, text: str) -> None:
    page.page.click("#terminal")
    page.page.keyboard.type(text)
    page.page.keyboard.press("Enter")


def test_the_python_repl_runs_in_the_terminal(page):
    assert page.page.evaluate("() => self.crossOriginIsolated") is True
    start(page, "python")
    wait_terminal(page, ">>> ")
    type_line(page, "2+3")
    wait_terminal(page, "\n5\n")
    # Line editing: Backspace, then Left twice and an insertion: "20*3" -> "20*" -> "20*4" -> "210*4".
    page.page.keyboard.type("20*3")
    page.page.keyboard.press("Backspace")
    page.page.keyboard.type("4")
    for _ in range(3):
        page.page.keyboard.press("ArrowLeft")
    page.page.keyboard.type("1")
    page.page.keyboard.press("Enter")
    wait_terminal(page, "840")
    # Ctrl-C drops the line being typed; the next line runs alone. State persists between lines.
    page.page.keyboard.type("undefined_name")
    page.page.keyboard.press("Control+C")
    type_line(page, "x = 6 * 7")
    type_line(page, "print('x is', x)")
    wait_terminal(page, "x is 42")
    page.page.keyboard.press("Control+D")  # end of file: the REPL exits
    run = page.last_run()
    assert run["interactive"] is True
    assert run["exitCode"] == 0
    assert "x is 42\n" in run["stdout"] and "840\n" in run["stdout"] and "5\n" in run["stdout"]
    assert "NameError" not in run["stderr"]
    assert ">>> " in run["stderr"]  # the REPL's prompts (it writes them to stderr)
    assert "210*4" in page.terminal_text()  # the edited line, echoed as it was typed
    assert page.errors == []


def test_input_in_a_script_gets_the_typed_line(page):
    start(page, "python -c \"name = input('name? '); print('hello', name.upper()); print(input() + '!')\"")
    wait_terminal(page, "name? ")
    type_line(page, "ada lovelace")
    type_line(page, "second")
    run = page.last_run()
    assert (run["exitCode"], run["stdout"]) == (0, "hello ADA LOVELACE\nsecond!\n")
    assert run["stderr"] == "name? "  # on a terminal, input() prompts on stderr (as CPython's readline path does)


def test_end_of_file_and_a_pasted_block(page):
    start(page, "python -c \"import sys; lines = sys.stdin.readlines(); print(len(lines), repr(lines[-1]))\"")
    page.page.click("#terminal")
    page.page.evaluate("""text => {  // a paste into the terminal: several lines at once
        const data = new DataTransfer();
        data.setData("text/plain", text);
        document.querySelector("#terminal textarea").dispatchEvent(new ClipboardEvent("paste", {clipboardData: data, bubbles: true}));
    }""", "one\ntwo\nthree\n")
    page.page.keyboard.press("Control+D")
    run = page.last_run()
    assert (run["exitCode"], run["stdout"]) == (0, "3 'three\\n'\n")


def test_stdin_from_the_form_is_not_the_terminal(page):
    page.page.wait_for_selector("#run:not([disabled])", timeout=RUN_TIMEOUT_MS)
    run = page.run("python -c \"import sys; print(sys.stdin.isatty(), sys.stdin.read())\"", stdin="given")
    assert (run["interactive"], run["exitCode"], run["stdout"]) == (False, 0, "False given\n")


def test_a_host_without_isolation_headers_gives_the_form_stdin_only(browser, boxer, hello_image, tmp_path):
    r = boxer("web", str(hello_image), "-o", str(tmp_path / "site"))
    assert r.returncode == 0, r.stderr
    with _static_server(tmp_path / "site") as url:
        tab = Page(browser, url, autorun=False)
        try:
            assert tab.page.evaluate("() => self.crossOriginIsolated") is False
            run = tab.run("python -c \"import sys; print(repr(sys.stdin.read()))\"")
            assert (run["interactive"], run["exitCode"], run["stdout"]) == (False, 0, "''\n")
        finally:
            tab.close()
