"""A REPL that answers Tab with hostile replies (runtime/wasi/complete.py): its session's own
`exec` (defined at start-up through PYTHONSTARTUP) sees the private line, nonce included, and
answers with escape sequences, a flood, deep nesting, a fake nonce, or never. The host draws
none of it, keeps its bounds, and the session goes on."""
from __future__ import annotations

import os
import sys

import pexpect

HOSTILE = r'''
import json as _json, os as _os, re as _re
mode = "escape"
def exec(code, *rest):
    nonce = _re.search(r"boxer-complete:([0-9a-f]+):", code).group(1).encode()
    marker = b"\x1eboxer-complete:" + nonce + b":"
    def say(body):
        _os.write(1, marker + _json.dumps(body).encode() + marker)
    if mode == "escape":
        evil = ["ab\x1b]2;PWNED\x07", "ab\x1b[2J", "ab\r\nINJECTED", "abc\x00", "zz_not_a_completion"]
        say([6, "ab\x1b[2J", evil + ["ab_good"]])
    elif mode == "flood":
        _os.write(1, marker + b"[1, \"ab_flood\", [\"ab_flood\"" + b" " * 300000)
        _os.write(1, b"]]" + marker + b"\nFLOOD-END\n")
    elif mode == "nested":
        _os.write(1, marker + b"[" * 30000 + b"]" * 30000 + marker)
    elif mode == "fake":
        _os.write(1, b"\x1eboxer-complete:" + b"0" * 32 + b":" + _json.dumps([1, "ab_fake", ["ab_fake"]]).encode())
    elif mode == "many":
        say([10 ** 12, "ab", ["ab%d" % i for i in range(5000)]])
    elif mode == "spin":
        while True:
            pass
'''


def test_hostile_answers_to_tab_draw_nothing_and_the_session_goes_on(cache_dir, hello_image, tmp_path):
    startup = tmp_path / "hostile.py"
    startup.write_text(HOSTILE)
    env = {**os.environ, "BOXER_CACHE_DIR": str(cache_dir), "BOXER_SERVER": "0", "TERM": "xterm"}
    child = pexpect.spawn(sys.executable, ["-m", "boxer_py", "run", "-it", "-e", "PYTHONSTARTUP=/hostile.py",
                                           "--file", f"{startup}:/hostile.py", str(hello_image), "python"],
                          env=env, encoding="utf-8", timeout=300, dimensions=(24, 80))
    child.expect_exact(">>> ")
    seen = []

    def line(text: str, output: str) -> None:
        child.send(text + "\r")
        child.expect_exact(f"{output}\r\n>>> ")
        seen.append(child.before)

    child.send("ab\t")  # only the one printable completion of "ab" is taken
    child.expect_exact("ab_good")
    seen.append(child.before)
    child.send("\x15")
    line("mode = 'flood'", "")
    child.send("ab\t")  # more than the capture holds: dropped, the rest of the output shown, the line kept
    child.expect_exact("FLOOD-END")
    child.send("cd\x01\x0b")  # typed into the same line; Ctrl-A, Ctrl-K: cleared
    for mode in ("nested", "fake"):
        line(f"mode = '{mode}'", "")
        child.send("ab\t")
        child.expect_exact("\a")  # no answer: a bell, the line as it was
        child.send("\x15")
    line("mode = 'many'", "")
    child.send("ab\t\t")  # a huge count is bounded; too many to list without asking
    child.expect(r"Display all \d+ possibilities\? \(y or n\)")
    child.send("n")
    child.expect_exact(">>> ab")
    child.send("\x15")
    line("mode = 'spin'", "")
    child.send("ab\t")  # never answers: Ctrl-C still reaches the guest, and the line comes back
    child.expect_exact("ab")
    child.sendintr()
    child.send("c\x15")
    line("print('after', 6 * 7)", "after 42")
    child.send("\x04")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    shown = "".join(seen) + child.before
    for evil in ("PWNED", "\x1b[2J", "INJECTED", "ab_fake", "zz_not"):
        assert evil not in shown, evil
