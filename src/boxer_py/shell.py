"""TEMPORARY interface stand-in until the shell interpreter lands (simple commands only)."""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .errors import BoxerError


@dataclass
class Invocation:
    argv: list[str]
    env: dict[str, str]
    cwd: str
    stdin: bytes


@dataclass
class Completed:
    exit_code: int
    stdout: bytes = b""
    stderr: bytes = b""


External = Callable[[Invocation], Completed]


@dataclass
class ShellResult:
    exit_code: int
    log: bytes
    owners: dict[str, tuple[int, int]] = field(default_factory=dict)


class ShellError(BoxerError):
    pass


def run_script(script: str, *, root: Path, env: dict[str, str], cwd: str, external: External) -> ShellResult:
    log = b""
    code = 0
    for part in script.split("&&"):
        done = external(Invocation(shlex.split(part), env, cwd, b""))
        log += done.stdout + done.stderr
        code = done.exit_code
        if code:
            break
    return ShellResult(code, log, {})
