"""The page's start (issue 19): runs of the image's CPython start from the snapshot `boxer web`
and `boxer serve` make with `boxer run`'s boot (runtime/preinit/page.py), and a returning
visitor downloads nothing big again (the image, the runtime and the snapshot are kept in Cache
Storage by digest and checked on every read: store.js). Real Chromium; `boxer run` of the same
image and command is the reference.
"""
from __future__ import annotations

import re
import shlex

import pytest

import boxer_py
from boxer_py.browser import site
from boxer_py.cli.browser import page_preinit
from test_web import Page, _static_server

BIG = re.compile(r"^/(image\.wasm|runtime-[0-9a-f]{64}\.wasm|preinit-[0-9a-f]{64}\.bin)$")
# A file of the image shrunk in place, then read: its own first bytes.
TRUNCATE = "f = open('/app/main.py', 'r+'); f.truncate(12); f.close(); print(repr(open('/app/main.py').read()))"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
PROBE = "import os, sys; print(sys.argv, os.getcwd(), os.environ['GREETING'], __name__)"


@pytest.fixture(scope="module")
def preinit(hello_image, cache_dir):
    found = page_preinit(hello_image, cache_dir)
    assert found is not None
    return found


def _python_image(tmp_path_factory, cache_dir, version: str):
    ctx = tmp_path_factory.mktemp(f"py{version}-ctx")
    (ctx / "Dockerfile").write_text(f'FROM python:{version}-slim\nCMD ["python", "-c", "print(1)"]\n')
    out = tmp_path_factory.mktemp(f"py{version}") / "image.wasm"
    boxer_py.build(ctx, out, cache_dir=cache_dir)
    return out


@pytest.fixture(scope="module")
def py313_image(tmp_path_factory, cache_dir):
    """An image on the 3.13 runtime, whose eval breaker is a word of bits (interrupt.py)."""
    return _python_image(tmp_path_factory, cache_dir, "3.13")


@pytest.fixture(scope="module")
def py311_image(tmp_path_factory, cache_dir):
    """An image on the 3.11 runtime, whose eval-breaker words lie below its signal handlers."""
    return _python_image(tmp_path_factory, cache_dir, "3.11")


@pytest.fixture(scope="module", params=["3.11", "3.12", "3.13"])
def interruptible(request, hello_image, preinit, cache_dir):
    """(image, its page snapshot) for each runtime whose Ctrl-C words differ in kind or place:
    3.11's and 3.12's are set to 1 (3.11's eval breaker below its handlers, 3.12's above),
    3.13's eval breaker gets a bit OR-ed in among others."""
    if request.param == "3.12":
        return hello_image, preinit
    image = request.getfixturevalue(f"py{request.param.replace('.', '')}_image")
    found = page_preinit(image, cache_dir)
    assert found is not None and found.interrupt_flags is not None
    if request.param == "3.13":
        assert any(bits != 1 for _, bits in found.interrupt_flags)  # the eval breaker's signals bit
    return image, found


def test_the_page_resumes_the_snapshot_and_prints_what_boxer_run_prints(browser, boxer, hello_image, tmp_path):
    out = tmp_path / "site"
    r = boxer("web", str(hello_image), "-o", str(out), "--autorun")
    assert r.returncode == 0, r.stderr
    assert len(list(out.glob("preinit-*.bin"))) == 1
    with _static_server(out) as url:
        tab = Page(browser, url)
        try:
            run = tab.last_run()
            expected = boxer("run", str(hello_image))
            assert (run["exitCode"], run["stdout"], run["stderr"]) == (0, expected.stdout, expected.stderr)
            assert run["preinitialised"] is True
            # A typed command of the same CPython resumes too; one CPython starts differently for does not.
            for command, resumed in ((f'python -c "{PROBE}" a b', True), ("python -V", False),
                                     ("python -c 'import sys; sys.exit(3)'", True),
                                     (f'python -c "{TRUNCATE}"', True)):
                run = tab.run(command)
                expected = boxer("run", str(hello_image), "sh", "-c", command)
                assert (run["exitCode"], run["stdout"], run["stderr"]) == \
                    (expected.returncode, expected.stdout, expected.stderr), command
                assert run["preinitialised"] is resumed, command
            assert tab.errors == []
        finally:
            tab.close()


def test_a_second_visit_fetches_nothing_big(browser, hello_image, preinit):
    server = site.serve(hello_image, "127.0.0.1", 0, autorun=True, preinit=preinit)
    context = browser.new_context()
    try:
        seen = []
        for _ in range(2):
            first = len(server.requests)
            tab = context.new_page()
            tab.goto(server.url)
            tab.wait_for_function("() => window.boxer && window.boxer.runs[0] && window.boxer.runs[0].done", timeout=180_000)
            run = tab.evaluate("() => window.boxer.runs[0]")
            assert (run["exitCode"], run["stdout"], run["preinitialised"]) == (0, "Hello from cpython 3.12.0 on wasi!\n", True)
            seen.append(sorted(p for p in server.requests[first:] if BIG.match(p)))
            tab.close()
        assert [len(s) for s in seen] == [3, 0], seen
    finally:
        context.close()
        server.close()


def _type(tab: Page, *lines: str) -> None:
    tab.page.click("#terminal")
    for line in lines:
        tab.page.keyboard.type(line)
        tab.page.keyboard.press("Enter")


def _wait_terminal(tab: Page, text: str) -> None:
    tab.page.wait_for_function("t => document.querySelector('.xterm-rows').innerText.includes(t)", arg=text,
                               timeout=180_000)


def test_ctrl_c_is_a_keyboard_interrupt_and_the_repl_survives(browser, interruptible):
    """As `boxer run -it`: a runaway loop ends with KeyboardInterrupt's traceback and 130; in the
    REPL, Ctrl-C stops a busy statement and drops a line being typed, and the session goes on."""
    image, preinit = interruptible
    assert preinit.interrupt_flags is not None
    server = site.serve(image, "127.0.0.1", 0, preinit=preinit)
    tab = Page(browser, server.url, autorun=False)
    try:
        assert tab.page.evaluate("() => self.crossOriginIsolated") is True
        tab.page.wait_for_selector("#run:not([disabled])", timeout=180_000)
        tab.page.fill("#command", "python -c \"print('spinning', flush=True); exec('while True: pass')\"")
        tab.page.click("#run")
        tab.page.wait_for_function("() => window.boxer.runs[0].stdout === 'spinning\\n'", timeout=180_000)
        tab.page.click("#terminal")
        tab.page.keyboard.press("Control+C")
        run = tab.last_run()
        assert (run["exitCode"], run["stdout"], run["trap"]) == (130, "spinning\n", None)
        assert ANSI.sub("", run["stderr"]).endswith("KeyboardInterrupt\n"), run["stderr"]  # 3.13 colours it on a terminal

        tab.page.fill("#command", "python")
        tab.page.click("#run")
        _wait_terminal(tab, ">>> ")
        _type(tab, "x = 41", "while True: x += 1; _ = x == 50 and print('looping')", "")
        _wait_terminal(tab, "looping")
        tab.page.keyboard.press("Control+C")
        _wait_terminal(tab, "KeyboardInterrupt\n>>> ")
        tab.page.keyboard.type("undefined_name")
        tab.page.keyboard.press("Control+C")  # at the prompt: the line is dropped, as CPython's REPL does
        _type(tab, "print('x is', x > 50)")
        _wait_terminal(tab, "x is True")
        tab.page.keyboard.press("Control+D")
        run = tab.last_run(2)
        assert (run["exitCode"], run["stdout"]) == (0, "looping\nx is True\n")
        assert run["stderr"].count("KeyboardInterrupt") == 2 and "NameError" not in run["stderr"]
        assert tab.errors == []
    finally:
        tab.close()
        server.close()


def test_ctrl_c_reaches_a_busy_guest_however_slowly_the_page_sets_its_words(browser, interruptible):
    """The page sets CPython's Ctrl-C words one after the other while the guest runs on: a
    busy loop checks its eval breaker all the time, so the words its handler reads must be
    set before it (as CPython's own handler does). A test hook pauses the page between words."""
    image, preinit = interruptible
    server = site.serve(image, "127.0.0.1", 0, preinit=preinit)
    tab = Page(browser, server.url, autorun=False)
    try:
        tab.page.wait_for_selector("#run:not([disabled])", timeout=180_000)
        tab.page.evaluate("() => { window.boxer.app.signalGap = 100; }")
        tab.page.fill("#command", "python -c \"print('spinning', flush=True); exec('while True: pass')\"")
        tab.page.click("#run")
        tab.page.wait_for_function("() => window.boxer.runs[0].stdout === 'spinning\\n'", timeout=180_000)
        tab.page.click("#terminal")
        tab.page.keyboard.press("Control+C")
        tab.page.wait_for_function("() => window.boxer.runs[0].done", timeout=30_000)
        run = tab.last_run()
        assert (run["exitCode"], run["stdout"], run["trap"]) == (130, "spinning\n", None)
        assert ANSI.sub("", run["stderr"]).endswith("KeyboardInterrupt\n"), run["stderr"]
        assert tab.errors == []
    finally:
        tab.close()
        server.close()


def test_the_line_typed_with_a_ctrl_c_in_one_burst_is_the_next_one_run(browser, interruptible):
    """Ctrl-C and the next line reach the page in one piece of input (xterm's onData, as a fast
    typist or a paste gives them): the line being typed and those typed ahead are dropped, the
    one after it is read once the REPL has printed KeyboardInterrupt, at the prompt and after a
    busy statement."""
    image, preinit = interruptible
    server = site.serve(image, "127.0.0.1", 0, preinit=preinit)
    tab = Page(browser, server.url, autorun=False)
    burst = "data => window.boxer.app.terminal.input(data)"
    try:
        tab.page.wait_for_selector("#run:not([disabled])", timeout=180_000)
        tab.page.fill("#command", "python")
        tab.page.click("#run")
        _wait_terminal(tab, ">>> ")
        tab.page.evaluate(burst, "x = 41\r")  # its own burst: a Ctrl-C interrupts a line the guest has begun
        tab.page.wait_for_function("() => window.boxer.runs[0].stderr.split('>>> ').length === 3", timeout=180_000)
        tab.page.evaluate(burst, "undefined_name\x03print('after the prompt', x)\r")
        tab.page.wait_for_function("() => window.boxer.runs[0].stdout.includes('after the prompt 41')", timeout=180_000)
        tab.page.evaluate(burst, "while True: x += 1; _ = x == 50 and print('looping', flush=True)\r\r")
        tab.page.wait_for_function("() => window.boxer.runs[0].stdout.includes('looping')", timeout=180_000)
        # A line typed ahead while the loop runs is dropped by the Ctrl-C, as a terminal flushes its input.
        tab.page.evaluate(burst, "print('typed ahead')\r\x03print('after the loop', x > 50)\r")
        tab.page.wait_for_function("() => window.boxer.runs[0].stdout.includes('after the loop')", timeout=180_000)
        tab.page.evaluate(burst, "\x04")
        run = tab.last_run()
        assert (run["exitCode"], run["stdout"]) == (0, "after the prompt 41\nlooping\nafter the loop True\n")
        assert run["stderr"].count("KeyboardInterrupt") == 2 and "Error" not in run["stderr"], run["stderr"]
        assert tab.errors == []
    finally:
        tab.close()
        server.close()


SIZE_PROBE = ("import shutil, signal; seen = []; "
              "signal.signal(signal.SIGWINCH, lambda *_: seen.append(tuple(shutil.get_terminal_size()))); "
              "print('start', tuple(shutil.get_terminal_size()), flush=True); exec('while not seen: pass'); "
              "print('resized', seen[0], flush=True); input(); print('now', tuple(shutil.get_terminal_size())); "
              "exec('try: open(\"/.boxer/tty/size\", \"w\")\\nexcept OSError as e: print(type(e).__name__)'); "
              "print(open('/.boxer/tty/size').read() == '%d %d\\n' % shutil.get_terminal_size())")


def test_the_guest_sees_the_terminals_size_and_follows_a_resize(browser, hello_image, preinit):
    """As `boxer run -it` (issue 20): shutil.get_terminal_size() is the page terminal's columns x
    rows, and a resize of the page runs the guest's SIGWINCH handler, which reads the new size."""
    assert preinit.winch is not None
    server = site.serve(hello_image, "127.0.0.1", 0, preinit=preinit)
    tab = Page(browser, server.url, autorun=False)
    size = "() => [window.boxer.app.terminal.cols, window.boxer.app.terminal.rows]"
    try:
        tab.page.set_viewport_size({"width": 1200, "height": 900})
        tab.page.wait_for_selector("#run:not([disabled])", timeout=180_000)
        tab.page.fill("#command", f"python -c {shlex.quote(SIZE_PROBE)}")
        tab.page.click("#run")
        tab.page.wait_for_function("() => window.boxer.runs[0].stdout.startsWith('start')", timeout=180_000)
        cols, rows = tab.page.evaluate(size)
        stdout = tab.page.evaluate("() => window.boxer.runs[0].stdout")
        assert stdout == f"start ({cols}, {rows})\n"
        tab.page.set_viewport_size({"width": 700, "height": 600})
        tab.page.wait_for_function("() => window.boxer.runs[0].stdout.includes('resized')", timeout=180_000)
        _type(tab, "")  # the handler has run: the layout has settled once the line is typed
        smaller = tab.page.evaluate(size)
        run = tab.last_run()
        assert run["exitCode"] == 0, run["stderr"]
        start, resized, now, write, same = run["stdout"].splitlines()
        assert (write, same) == ("PermissionError", "True")  # the guest cannot change what the page tells it
        assert (start, now) == (f"start ({cols}, {rows})", f"now ({smaller[0]}, {smaller[1]})")
        assert smaller[0] < cols and int(resized.split("(")[1].split(",")[0]) < cols  # the handler read a new size
        assert tab.errors == []
    finally:
        tab.close()
        server.close()
