"""Docker's variable expansion, shared by the planner (ENV/ARG) and the launcher (shell-form CMD)."""
from __future__ import annotations

import re

_VAR = re.compile(r"\\(\$)|\$(?:\{(\w+)(?:(:?[-+])([^}]*))?\}|(\w+))")


def expand(text: str, variables: dict[str, str]) -> str:
    """Docker's word expansion: $VAR, ${VAR}, ${VAR:-default}, ${VAR:+alt}, and \\$ for a literal $."""

    def sub(m: re.Match) -> str:
        if m.group(1):
            return "$"
        name = m.group(2) or m.group(5)
        op, word = m.group(3), m.group(4) or ""
        value = variables.get(name)
        if op in (":-", "-"):
            unset = value is None or (op == ":-" and value == "")
            return expand(word, variables) if unset else value
        if op in (":+", "+"):
            isset = value is not None and (op == "+" or value != "")
            return expand(word, variables) if isset else ""
        return value or ""

    return _VAR.sub(sub, text)
