"""Docker's variable expansion, shared by the planner (ENV/ARG), the launcher and the OCI push (shell-form CMD)."""
from __future__ import annotations

import re
import shlex

from boxer_py.errors import RunError

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


def shell_words(script: str, env: dict[str, str]) -> list[str]:
    """`/bin/sh -c SCRIPT` without a shell: one simple command, with $VAR expansion."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars="|&;<>()`")
    lexer.whitespace_split = True
    words = list(lexer)
    special = [w for w in words if w and all(c in "|&;<>()`" for c in w)]
    if special or "$(" in script:
        raise RunError(f"the command {script!r} needs a shell ({(special or ['$('])[0]}), and a "
                       "WebAssembly image has none; use the exec form: [\"prog\", \"arg\"]")
    return [expand(w, env) for w in words]

