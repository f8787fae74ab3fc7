"""The program a run starts, by Docker's rules (ENTRYPOINT, CMD, run arguments, shell form)."""
from __future__ import annotations

import shlex

from boxer_py.errors import RunError
from boxer_py.image.imagefile import Image
from boxer_py.image.variables import expand
from boxer_py.runtime.spec import RunSpec


def resolve_argv(image: Image, spec: RunSpec) -> list[str]:
    """Docker's rules: ENTRYPOINT + CMD; run arguments replace CMD; --entrypoint clears CMD."""
    config = image.spec.config
    entrypoint = list(spec.entrypoint) if spec.entrypoint is not None else list(config.entrypoint)
    if spec.command:
        cmd = list(spec.command)
    else:
        cmd = list(config.cmd) if spec.entrypoint is None else []
    argv = entrypoint + cmd
    if not argv:
        raise RunError("no command: the image has no ENTRYPOINT or CMD; give one after the image")
    return argv


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

