"""Docker's variable expansion, shared by the planner (ENV/ARG) and the launcher (shell-form CMD)."""
from __future__ import annotations

import re

_VAR = re.compile(r"\\(\$)|\$(?:\{(\w+)(?:(:?[-+])([^}]*))?\}|(\w+))")


class ExpansionTooLarge(ValueError):
    """An expansion that would pass its `limit` (`ENV A=$A$A` repeated doubles each time)."""


def expand(text: str, variables: dict[str, str], limit: int | None = None) -> str:
    """Docker's word expansion: $VAR, ${VAR}, ${VAR:-default}, ${VAR:+alt}, and \\$ for a literal $.
    With a `limit`, a result longer than `limit` characters raises ExpansionTooLarge as soon as
    it is known to be, before it is built."""
    size = len(text)

    def sub(m: re.Match[str]) -> str:
        nonlocal size
        value = _value(m)
        size += len(value)
        if limit is not None and size > limit:
            raise ExpansionTooLarge(f"expands to more than {limit} characters")
        return value

    def _value(m: re.Match[str]) -> str:
        if m.group(1):
            return "$"
        name = m.group(2) or m.group(5)
        op, word = m.group(3), m.group(4) or ""
        value = variables.get(name)
        if op in (":-", "-"):
            if value is None or (op == ":-" and value == ""):  # unset
                return expand(word, variables, limit)
            return value
        if op in (":+", "+"):
            isset = value is not None and (op == "+" or value != "")
            return expand(word, variables, limit) if isset else ""
        return value or ""

    return _VAR.sub(sub, text)
