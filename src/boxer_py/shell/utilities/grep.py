"""`grep` for the RUN shell, with sed's POSIX regular expression translation.
"""
from __future__ import annotations

import re

from boxer_py.shell.parse import ShellError
from boxer_py.shell.utilities.core import (
    Call,
    Utility,
    decode,
    parse_options,
    read_inputs,
)
from boxer_py.shell.utilities.sed import posix_regex


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
    pattern = re.escape(patterns[0]) if opts.get("F") else posix_regex(patterns[0], bool(opts.get("E"))).pattern
    if opts.get("w"):
        pattern = rf"\b(?:{pattern})\b"
    if opts.get("x"):
        pattern = rf"(?:{pattern})\Z"
    regex = re.compile(pattern, re.I if opts.get("i") else 0)
    found, status = read_inputs(call, operands)
    status = 2 if status else 1
    for name, data in found:
        lines = decode(data).splitlines()
        hits = [(n, line) for n, line in enumerate(lines, 1)
                if bool(regex.match(line) if opts.get("x") else regex.search(line)) != bool(opts.get("v"))]
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
