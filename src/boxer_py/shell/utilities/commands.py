"""Utilities about commands rather than text or files: which, xargs (which runs one through
the shell, like find -exec), sleep (accepted, not waited for).
"""
from __future__ import annotations

import re
import shlex
from collections.abc import Iterator

from boxer_py.shell import limits
from boxer_py.shell.utilities.core import (
    Call,
    Utility,
    decode,
    lookup_path,
    parse_options,
    unescape,
)


def which(call: Call) -> int:
    opts, operands = parse_options(call, "a")
    status = 0
    for name in operands:
        found = lookup_path(call.root, call.cwd, call.env.get("PATH", ""), name)
        if found is None:
            status = 1
        else:
            call.print(found + "\n")
    return status


def xargs(call: Call) -> int:
    opts, operands = parse_options(call, "r0t", "nId", {"no-run-if-empty": "r", "null": "0", "max-args": "n=",
                                                   "replace": "I=", "delimiter": "d=", "verbose": "t"})
    text = decode(call.stdin)
    command = operands or ["echo"]
    if "I" in opts:
        items = [line for line in text.splitlines() if line.strip()]
    elif opts.get("0") or "d" in opts:
        delim = "\0" if opts.get("0") else unescape(str(opts["d"]), False)[0]
        items = [item for item in text.split(delim) if item]
    else:
        try:
            items = shlex.split(text)
        except ValueError as e:
            return call.fail(f"unmatched quote in the input ({e})")
    if "I" in opts:
        marker = str(opts["I"])
        for item in items:   # each command line bounded before it is made: `xargs -I{} echo {}{}{}...`
            if marker and sum(len(a) + a.count(marker) * len(item) for a in command) > limits.MAX_ARGV:
                limits.argv_too_long(command[0])
        batches: Iterator[list[str]] = ([arg.replace(marker, item) for arg in command] for item in items)
    else:
        size = int(str(opts["n"])) if "n" in opts and str(opts["n"]).isdigit() else max(len(items), 1)
        batches = (command + items[k:k + size] for k in range(0, len(items), size)) if items else \
            iter([] if opts.get("r") else [list(command)])
    status = 0
    for argv in batches:
        if opts.get("t"):
            call.err((" ".join(argv) + "\n").encode("utf-8", "surrogateescape"))
        if call.run(argv) != 0:
            status = 123
    return status


def sleep(call: Call) -> int:
    if not call.args or not all(re.fullmatch(r"\d+(\.\d+)?[smhd]?", a) for a in call.args):
        return call.fail(f"invalid time interval '{' '.join(call.args)}'")
    return 0


UTILITIES: dict[str, Utility] = {"which": which, "xargs": xargs, "sleep": sleep}
