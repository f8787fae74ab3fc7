"""Session.interpreter(): a live guest CPython whose state persists between calls, against
real Wasmtime: REPL display and `_`, errors that keep the state, timeouts and crashes that
restart it (and say so), limits per call and in total, files in and out, reset, many side by
side, and snapshot()/from_snapshot."""
from __future__ import annotations

import threading
import time

import pytest

import boxer_py


@pytest.fixture(scope="module")
def box(hello_image, cache_dir):
    with boxer_py.Session(hello_image, cache_dir) as session:
        yield session


@pytest.fixture
def it(box):
    with box.interpreter() as interpreter:
        yield interpreter


def test_state_persists_and_the_last_expression_is_shown(it):
    assert it.run("import math\nx = 6 * 7").stdout == b""
    r = it.run("x")
    assert (r.exit_code, r.stdout, r.restarted) == (0, b"42\n", False)
    assert it.run("_ + 1").stdout == b"43\n"  # `_` as in the REPL
    assert it.run("None").stdout == b""  # the REPL shows no None
    assert it.run("print('a')\nmath.sqrt(x * x)").stdout == b"a\n42.0\n"


def test_an_exception_keeps_the_state(it):
    it.run("total = 10")
    r = it.run("total += 1\n1 / 0")
    assert r.exit_code == 1 and not r.restarted
    assert r.error["type"] == "ZeroDivisionError" and "1 / 0" in r.error["traceback"]
    assert r.stderr.endswith(b"ZeroDivisionError: division by zero\n")
    assert it.run("total").stdout == b"11\n"
    assert it.run("raise SystemExit(3)").exit_code == 3
    assert it.run("total").stdout == b"11\n"


def test_a_timeout_restarts_and_says_so(it):
    it.run("kept = 1")
    r = it.run("while True: pass", timeout=0.5)
    assert r.timed_out and r.exit_code == 124 and r.restarted
    after = it.run("kept")
    assert after.exit_code == 1 and after.error["type"] == "NameError"
    assert it.run("1 + 1").stdout == b"2\n"  # usable again


def test_exit_and_cancel_restart(it):
    it.write_file("/tmp/keep.txt", b"files survive a restart")
    r = it.run("import os; os._exit(5)")
    assert (r.exit_code, r.restarted) == (5, True)
    assert it.run("open('/tmp/keep.txt').read()").stdout == b"'files survive a restart'\n"
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    started = time.monotonic()
    r = it.run("import time; time.sleep(60)", cancel=cancel)
    assert (r.exit_code, r.restarted) == (130, True) and time.monotonic() - started < 10


def test_memory_per_call_and_in_total(box):
    with box.interpreter(memory="96m") as it:
        r = it.run("a = bytearray(200 << 20)")
        assert r.exit_code == 1 and r.error["type"] == "MemoryError" and r.out_of_memory and not r.restarted
        assert it.run("b = bytearray(16 << 20); len(b)").stdout == b"16777216\n"
    with box.interpreter() as it:  # a call's own cap holds for that call only
        assert it.run("a = bytearray(100 << 20)", memory="64m").error["type"] == "MemoryError"
        assert it.run("a = bytearray(100 << 20); len(a)").stdout == b"104857600\n"


def test_total_time_and_output_budgets(box):
    with box.interpreter(timeout=1.5, max_output="100") as it:
        first = it.run("print('x' * 80)")
        assert first.exit_code == 0 and not first.stdout_truncated
        second = it.run("print('y' * 80)")
        assert second.stdout_truncated and len(second.stdout) <= 20
        third = it.run("print('z')")
        assert third.exit_code != 0 and "used up" in third.trap
    with box.interpreter(timeout=1) as it:
        assert it.run("while True: pass").timed_out
        assert "used up" in it.run("1").trap


def test_files_in_and_out(it):
    r = it.run("open('/out/result.txt', 'w').write(open('/inputs/a.csv').read().upper())",
               files={"/inputs/a.csv": b"a,b\n"})
    assert r.files == {"/out/result.txt": b"A,B\n"}
    assert it.run("1").files == {}  # only what a call made or changed
    assert it.list_files() == {"/out/result.txt": 4}
    assert it.read_file("/out/result.txt") == b"A,B\n"
    it.write_file("/work/mod.py", "VALUE = 7\n")
    assert it.run("import sys; sys.path.insert(0, '/work'); import mod; mod.VALUE").stdout == b"7\n"


def test_reset_starts_anew(it):
    it.run("gone = True")
    it.write_file("/tmp/gone.txt", b"x")
    it.reset()
    assert it.run("'gone' in dir()").stdout == b"False\n"
    assert it.run("import os; os.path.exists('/tmp/gone.txt')").stdout == b"False\n"


def test_interpreters_are_isolated(box):
    with box.interpreter() as a, box.interpreter() as b:
        a.run("who = 'a'")
        b.run("who = 'b'")
        a.run("open('/tmp/mine', 'w').write('a')")
        assert (a.run("who").stdout, b.run("who").stdout) == (b"'a'\n", b"'b'\n")
        assert b.run("import os; os.path.exists('/tmp/mine')").stdout == b"False\n"
        assert a.run("import random; random.random()").stdout != b.run("import random; random.random()").stdout


def test_snapshot_and_restore(box, it):
    it.run("import json\ndata = {'n': 41}\ndef bump(): data['n'] += 1; return data['n']")
    saved = it.snapshot()
    assert it.run("bump()").stdout == b"42\n"
    with box.interpreter(from_snapshot=saved) as restored:
        assert restored.run("bump()").stdout == b"42\n"  # from the state at the snapshot
        assert restored.run("json.dumps(data)").stdout == b"'{\"n\": 42}'\n"
    assert it.run("bump()").stdout == b"43\n"  # the original goes on on its own


def test_close_ends_it(box):
    it = box.interpreter()
    it.close()
    with pytest.raises(boxer_py.RunError, match="closed"):
        it.run("1")


def test_async_interpreter(box, hello_image, cache_dir):
    import asyncio

    async def main() -> list[bytes]:
        async with boxer_py.AsyncSession(hello_image, cache_dir) as abox:
            async with await abox.interpreter() as ait:
                await ait.run("n = 2")
                return [(await ait.run("n ** 10")).stdout]

    assert asyncio.run(main()) == [b"1024\n"]
