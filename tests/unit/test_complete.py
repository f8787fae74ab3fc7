"""The host's side of Tab completion in `boxer run -it IMAGE python` (runtime/wasi/complete.py):
which runs are CPython's REPL, the word readline would complete, and the checks on what the
guest answers (the guest is hostile: see tests/containment/test_hostile_complete.py for a
real one)."""
from __future__ import annotations

import json

import pytest

from boxer_py.runtime.wasi.complete import MAX_MATCH, MAX_MATCHES, MAX_REPLY, Exchange, columns, is_repl, word_start

REACTOR = "__import__('sys').exit(__import__('_reactor').run(['python', *__import__('sys').argv[1:]], {}))"


@pytest.mark.parametrize("argv, repl", [
    (["python"], True), (["/usr/local/bin/python3.12", "-q", "-u"], True), (["python3", "-i", "app.py"], True),
    (["python", "-ic", "x = 1"], True), (["python", "-"], True), (["python", "-X", "dev", "-W", "error"], True),
    (["python", "-c", "input()"], False), (["python", "-m", "http.server"], False), (["python", "app.py"], False),
    (["python", "app.py", "-i"], False), (["python", "-Wd", "app.py"], False), (["python", "-c", "x", "-i"], False),
    (["app"], False), (["/app/server"], False), ([], False),
    (["python", "-c", REACTOR], True), (["python", "-c", REACTOR, "-q"], True), (["python", "-c", REACTOR, "app.py"], False),
])
def test_only_cpythons_interactive_loop_is_a_repl(argv, repl):
    assert is_repl(argv) is repl


@pytest.mark.parametrize("before, word", [
    ("os.pa", "os.pa"), ("print(os.pa", "os.pa"), ("x = 12; x.bit_", "x.bit_"), ("    pri", "pri"),
    ("f(a, b", "b"), ("d['ke", "ke"), ("", ""), ("x = ", ""),
])
def test_the_word_is_what_readline_would_complete(before, word):
    line = list(before + ")")  # what follows the cursor is not part of it
    assert "".join(line[word_start(line, len(before)):len(before)]) == word


def reply(exchange: Exchange, body: object) -> bytes:
    marker = b"\x1eboxer-complete:" + exchange.nonce + b":"
    return marker + json.dumps(body).encode() + marker


def test_an_answer_is_found_among_what_the_guest_wrote():
    exchange = Exchange(list("os.pa"), 5, 0)
    assert b"os.pa" in exchange.query() and exchange.nonce in exchange.query()
    found = ["os.pardir", "os.path", "os.pathconf("]
    assert exchange.capture(b"noise before" + reply(exchange, [3, "os.pa", found]) + b">>> ")
    matches = exchange.answer()
    assert matches is not None and matches.shown == tuple(found) and matches.prefix == "os.pa" and matches.count == 3


def test_one_candidate_is_the_completion():
    exchange = Exchange(list("pri"), 3, 0)
    exchange.capture(reply(exchange, [1, "print(", ["print("]]))
    matches = exchange.answer()
    assert matches is not None and matches.prefix == "print("


@pytest.mark.parametrize("body", [
    "not a list", [1, "a"], [None, "ab", []], [1, 2, ["abc"]], {"count": 1}, [1, "ab", "abc"],
])
def test_answers_of_the_wrong_shape_are_no_answer(body):
    exchange = Exchange(list("ab"), 2, 0)
    exchange.capture(reply(exchange, body))
    assert exchange.answer() is None


def test_a_marker_with_another_nonce_or_no_end_is_no_answer():
    exchange = Exchange(list("ab"), 2, 0)
    other = Exchange(list("ab"), 2, 0)
    exchange.capture(reply(other, [1, "abc", ["abc"]]))
    assert exchange.answer() is None
    exchange = Exchange(list("ab"), 2, 0)
    exchange.capture(b"\x1eboxer-complete:" + exchange.nonce + b':[1, "abc", ["abc"]]')
    assert exchange.answer() is None


def test_candidates_that_could_draw_on_the_terminal_are_dropped():
    exchange = Exchange(list("ab"), 2, 0)
    evil = ["ab\x1b]2;pwned\x07", "ab\x1b[2J", "ab\r\nrm -rf /", "ab\x00", "xyz", "ab" + "c" * MAX_MATCH, 7, None]
    exchange.capture(reply(exchange, [len(evil) + 1, "ab\x1b[2J", [*evil, "ab_good"]]))
    matches = exchange.answer()
    assert matches is not None and matches.shown == ("ab_good",) and matches.prefix == "ab_good"


def test_deep_nesting_and_a_huge_count_are_bounded():
    exchange = Exchange(list("ab"), 2, 0)
    marker = b"\x1eboxer-complete:" + exchange.nonce + b":"
    exchange.capture(marker + b"[" * 30000 + b"]" * 30000 + marker)
    assert exchange.answer() is None
    exchange = Exchange(list("ab"), 2, 0)
    many = [f"ab{i}" for i in range(MAX_MATCHES + 500)]
    exchange.capture(reply(exchange, [10**30, "ab", many]))
    matches = exchange.answer()
    assert matches is not None and len(matches.shown) == MAX_MATCHES and matches.count == 10**9


def test_more_than_max_reply_abandons_the_exchange():
    exchange = Exchange(list("ab"), 2, 0)
    assert exchange.capture(reply(exchange, [1, "abc", ["abc"]]))
    assert not exchange.capture(b"x" * MAX_REPLY)
    assert exchange.overflowed and not exchange.captured and exchange.answer() is None
    assert not exchange.capture(b"more")


def test_candidates_are_listed_down_columns_as_readline_does():
    names = ("os.pardir", "os.path", "os.pathconf(", "os.pathconf_names", "os.pathsep")
    assert columns(names, 80) == ["os.pardir          os.pathconf(       os.pathsep",
                                  "os.path            os.pathconf_names"]
    assert columns(names, 20) == list(names)
