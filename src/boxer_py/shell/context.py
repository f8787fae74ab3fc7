"""What a builtin sees of the shell running it (Context), the shell's variables and options
(State), and the signals that cross commands (exit, return, break, continue).

The builtins are functions over a Context, so they never import the interpreter.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from boxer_py.shell.limits import MAX_NESTING, Variables
from boxer_py.shell.parse import Program
from boxer_py.shell.streams import Input, Sink

__all__ = ["MAX_NESTING", "State", "Context", "ShellExit", "FunctionReturn", "LoopControl"]

OPTION_LETTERS = {"e": "errexit", "u": "nounset", "x": "xtrace", "f": "noglob"}
OPTION_NAMES = {"errexit", "nounset", "xtrace", "noglob", "pipefail"}


class ShellExit(Exception):
    """`exit N` (or set -e): ends the current shell or subshell."""

    def __init__(self, code: int):
        self.code = code


class FunctionReturn(Exception):
    def __init__(self, code: int):
        self.code = code


class LoopControl(Exception):
    """`break N` / `continue N`."""

    def __init__(self, levels: int, is_break: bool):
        self.levels, self.is_break = levels, is_break


@dataclass
class State:
    """One shell's variables and settings; a subshell gets a copy, eval and source share it."""
    vars: dict[str, str]
    exported: set[str]
    cwd: str
    options: set[str] = field(default_factory=set)
    status: int = 0
    arg0: str = "sh"
    positional: list[str] = field(default_factory=list)
    functions: dict[str, tuple[Program, Any]] = field(default_factory=dict)   # name -> (program, body node)
    frames: list[dict[str, str | None]] = field(default_factory=list)   # `local` saves, per function call

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "vars" and not isinstance(value, Variables):
            value = Variables(value)   # every shell's variables are bounded (limits.Variables)
        super().__setattr__(name, value)

    def copy(self) -> State:
        return State(self.vars.copy(), set(self.exported), self.cwd, set(self.options), self.status,
                     self.arg0, list(self.positional), dict(self.functions), [])

    def environment(self) -> dict[str, str]:
        """The exported variables, as a command started now sees them."""
        return {k: v for k, v in self.vars.items() if k in self.exported}


class Context(Protocol):
    """The shell a builtin runs in."""

    @property
    def state(self) -> State: ...
    @property
    def root(self) -> Path: ...            # the rootfs, as `/`
    @property
    def stdin(self) -> Input: ...
    @property
    def fds(self) -> dict[int, Sink]: ...

    def err(self, message: str) -> None:
        """A line on stderr."""
    def get(self, name: str) -> str | None:
        """A variable or special parameter ($?, $1, ...)."""
    def assign(self, name: str, value: str) -> None: ...
    def which(self, name: str) -> str | None:
        """What `command -v` prints: a path on PATH, or the name of a builtin, function or utility."""
    def dispatch(self, argv: list[str], assigned: dict[str, str]) -> int:
        """Run one command line (already expanded) in this shell."""
    def dispatch_in(self, state: State, argv: list[str]) -> int:
        """Run one command line with other variables (env VAR=x cmd), same output."""
    def run_nested(self, program: Program) -> int:
        """Run a program in this shell's own state and output (eval, source)."""
