"""`grep` for the RUN shell: POSIX regular expressions through regex.Regex (no runaway
backtracking), files through limits.read_file, lines through limits.split_lines.
"""
from __future__ import annotations

from boxer_py.shell import limits
from boxer_py.shell.parse import ShellError
from boxer_py.shell.regex import Regex
from boxer_py.shell.utilities.core import (
    Call,
    Utility,
    decode,
    parse_options,
    read_inputs,
)


def grep(call: Call) -> int:
    opts, operands = parse_options(call, "qvicnlEFxwsrh", "e", {"quiet": "q", "silent": "q", "invert-match": "v",
                                                          "ignore-case": "i", "count": "c", "line-number": "n",
                                                          "extended-regexp": "E", "fixed-strings": "F",
                                                          "regexp": "e=", "line-regexp": "x", "word-regexp": "w",
                                                          "no-messages": "s"})
    if opts.get("r"):
        raise ShellError("grep: unsupported option '-r'")
    patterns = [str(opts["e"])] if "e" in opts else ([operands.pop(0)] if operands else [])
    if not patterns:
        return call.fail("no pattern given", 2)
    regex = Regex(patterns[0], bool(opts.get("E")), bool(opts.get("i")), literal=bool(opts.get("F")),
                  whole_line=bool(opts.get("x")), word=bool(opts.get("w")))
    found, status = read_inputs(call, operands)
    status = 2 if status else 1
    for name, data in found:
        lines = limits.split_lines(decode(data))
        hits = [(n, line) for n, line in enumerate(lines, 1)
                if (regex.search(line) is not None) != bool(opts.get("v"))]
        if hits and status != 2:
            status = 0
        if opts.get("q"):
            continue
        prefix = f"{name}:" if len(found) > 1 and not opts.get("h") else ""
        if opts.get("l"):
            if hits:
                call.print(name + "\n")
        elif opts.get("c"):
            call.print(f"{prefix}{len(hits)}\n")
        else:
            call.print("".join(f"{prefix}{str(n) + ':' if opts.get('n') else ''}{line}\n" for n, line in hits))
    return status


UTILITIES: dict[str, Utility] = {"grep": grep}
