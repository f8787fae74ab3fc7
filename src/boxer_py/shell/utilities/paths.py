"""Path names for the RUN shell: pwd, basename, dirname.
"""
from __future__ import annotations

import posixpath

from boxer_py.shell.utilities.core import (
    Call,
    Utility,
    parse_options,
)


def pwd(call: Call) -> int:
    parse_options(call, "LP")
    call.print(call.cwd + "\n")
    return 0


def basename(call: Call) -> int:
    _, operands = parse_options(call, "")
    if not operands:
        return call.fail("missing operand")
    name = operands[0].rstrip("/") or "/"
    name = posixpath.basename(name) or name
    if len(operands) > 1 and name != operands[1] and name.endswith(operands[1]):
        name = name[: -len(operands[1])]
    call.print(name + "\n")
    return 0


def dirname(call: Call) -> int:
    _, operands = parse_options(call, "")
    if not operands:
        return call.fail("missing operand")
    for p in operands:
        stripped = p.rstrip("/") or "/"
        call.print((posixpath.dirname(stripped).rstrip("/") or ("/" if stripped.startswith("/") else ".")) + "\n")
    return 0


UTILITIES: dict[str, Utility] = {"pwd": pwd, "basename": basename, "dirname": dirname}
