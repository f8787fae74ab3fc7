"""The RUN shell's builtins: cd, export, set, exit, read, eval, source, env, command...

They change the shell's own state, so they are methods (a mixin of the interpreter in
shell.py), unlike the utilities, which only see a Call. Control flow that crosses
commands (exit, break, continue, return) travels as the exceptions defined here.
"""
from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Callable
from typing import TYPE_CHECKING

from boxer_py.errors import BoxerError
from boxer_py.image.rootfs import resolve
from boxer_py.shell.parse import ShellError, parse
from boxer_py.shell.utilities.core import decode, encode

if TYPE_CHECKING:
    from boxer_py.shell.interpreter import _Shell

MAX_NESTING = 64
OPTION_LETTERS = {"e": "errexit", "u": "nounset", "x": "xtrace", "f": "noglob"}
OPTION_NAMES = {"errexit", "nounset", "xtrace", "noglob", "pipefail"}
# Shell builtins this shell does not implement: refused rather than handed to `external`.
UNSUPPORTED_BUILTINS = {
    "trap", "alias", "unalias", "getopts", "wait", "ulimit", "umask", "readonly", "type", "hash", "jobs",
    "fg", "bg", "times", "declare", "typeset", "let", "shopt", "pushd", "popd", "history", "function", "select",
}


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


class Builtins:
    """Mixed into the interpreter (`_Shell`), whose state, fds and stdin they act on."""

    def _err(self, message: str) -> None:
        self.fds[2].write(encode(message + "\n"))

    def b_true(self, args: list[str], _: dict) -> int:
        return 0

    def b_false(self, args: list[str], _: dict) -> int:
        return 1

    def b_cd(self, args: list[str], _: dict) -> int:
        args = [a for a in args if a not in ("-L", "-P")]
        target = args[0] if args else (self.state.vars.get("HOME") or "/")
        if target == "-":
            target = self.state.vars.get("OLDPWD") or self.state.cwd
        guest = posixpath.normpath(posixpath.join(self.state.cwd, target))
        guest = "/" + guest.lstrip("/")
        try:
            ok = resolve(self.shared.root, guest).is_dir()
        except BoxerError:
            ok = False
        if not ok:
            self._err(f"sh: cd: can't cd to {target}")
            return 2
        self.state.vars["OLDPWD"] = self.state.cwd
        self.state.exported.add("OLDPWD")
        self.state.cwd = self.state.vars["PWD"] = guest
        return 0

    def b_export(self, args: list[str], _: dict) -> int:
        for a in args or ["-p"]:
            if a == "-p":
                for k in sorted(self.state.exported):
                    if k in self.state.vars:
                        self.fds[1].write(encode(f"export {k}={shlex.quote(self.state.vars[k])}\n"))
                continue
            name, eq, value = a.partition("=")
            if not is_name(name):
                self._err(f"sh: export: {name}: bad variable name")
                return 2
            if eq:
                self.state.vars[name] = value
            self.state.exported.add(name)
        return 0

    def b_unset(self, args: list[str], _: dict) -> int:
        functions = bool(args) and args[0] == "-f"
        for a in args:
            if a in ("-v", "-f"):
                continue
            if functions:
                self.state.functions.pop(a, None)
                continue
            self.state.vars.pop(a, None)
            self.state.exported.discard(a)
        return 0

    def b_shift(self, args: list[str], _: dict) -> int:
        n = int(args[0]) if args and args[0].isdigit() else 1
        if n > len(self.state.positional):
            self._err("sh: shift: can't shift that many")
            return 2
        self.state.positional = self.state.positional[n:]
        return 0

    def b_local(self, args: list[str], _: dict) -> int:
        if not self.state.frames:
            self._err("sh: local: not in a function")
            return 2
        frame = self.state.frames[-1]
        for a in args:
            name, eq, value = a.partition("=")
            if not is_name(name):
                self._err(f"sh: local: {name}: bad variable name")
                return 2
            frame.setdefault(name, self.state.vars.get(name))
            if eq:
                self.state.vars[name] = value
        return 0

    def b_return(self, args: list[str], _: dict) -> int:
        raise FunctionReturn(int(args[0]) & 255 if args and args[0].isdigit() else self.state.status)

    def b_set(self, args: list[str], _: dict) -> int:
        if not args:
            for k, v in sorted(self.state.vars.items()):
                self.fds[1].write(encode(f"{k}={shlex.quote(v)}\n"))
            return 0
        k = 0
        while k < len(args):
            a = args[k]
            if a in ("-o", "+o"):
                if k + 1 >= len(args):
                    for name in sorted(OPTION_NAMES):
                        self.fds[1].write(encode(f"{name}\t{'on' if name in self.state.options else 'off'}\n"))
                    return 0
                name = args[k + 1]
                if name not in OPTION_NAMES:
                    raise ShellError(f"set: unsupported option '-o {name}'")
                (self.state.options.add if a == "-o" else self.state.options.discard)(name)
                k += 2
                continue
            if a[:1] in "-+" and len(a) > 1 and a != "--":
                for letter in a[1:]:
                    if letter == "v":
                        continue
                    if letter == "o" and k + 1 < len(args):   # set -eo pipefail
                        k += 1
                        if args[k] not in OPTION_NAMES:
                            raise ShellError(f"set: unsupported option '-o {args[k]}'")
                        (self.state.options.add if a[0] == "-" else self.state.options.discard)(args[k])
                        continue
                    if letter not in OPTION_LETTERS:
                        raise ShellError(f"set: unsupported option '{a[0]}{letter}'")
                    option = OPTION_LETTERS[letter]
                    (self.state.options.add if a[0] == "-" else self.state.options.discard)(option)
                k += 1
                continue
            self.state.positional = list(args[k + 1:] if a == "--" else args[k:])   # set -- a b
            return 0
        return 0

    def b_exit(self, args: list[str], _: dict) -> int:
        if args and not args[0].lstrip("-").isdigit():
            self._err(f"sh: exit: Illegal number: {args[0]}")
            raise ShellExit(2)
        raise ShellExit(int(args[0]) & 255 if args else self.state.status)

    def b_break(self, args: list[str], _: dict) -> int:
        raise LoopControl(int(args[0]) if args and args[0].isdigit() else 1, True)

    def b_continue(self, args: list[str], _: dict) -> int:
        raise LoopControl(int(args[0]) if args and args[0].isdigit() else 1, False)

    def b_read(self, args: list[str], assigned: dict) -> int:
        raw = False
        while args and args[0].startswith("-"):
            flag = args.pop(0)
            if flag == "-r":
                raw = True
            elif flag == "-p" and args:
                args.pop(0)   # a prompt: not shown, nobody is typing
            else:
                raise ShellError(f"read: unsupported option '{flag}'")
        names = args or ["REPLY"]
        line = self.stdin.readline()
        text = decode(line or b"")
        while not raw and text.endswith("\\\n"):
            more = self.stdin.readline()
            text = text[:-2] + decode(more or b"")
        text = text[:-1] if text.endswith("\n") else text
        if not raw:
            text = re.sub(r"\\(.)", r"\1", text)
        separators = assigned.get("IFS", self.get("IFS"))   # IFS=: read a b
        separators = " \t\n" if separators is None else separators
        fields = split_read(text, separators, len(names))
        for k, name in enumerate(names):
            self._assign(name, fields[k] if k < len(fields) else "")
        return 1 if line is None else 0

    def b_eval(self, args: list[str], _: dict) -> int:
        program = parse(" ".join(args))
        return self._child(program, state=self.state, fds=self.fds).run_nested()

    def b_source(self, args: list[str], _: dict) -> int:
        if not args:
            self._err("sh: .: filename argument required")
            return 2
        try:
            text = decode(resolve(self.shared.root, posixpath.join(self.state.cwd, args[0])).read_bytes())
        except (OSError, BoxerError):
            self._err(f"sh: .: cannot open {args[0]}: No such file")
            return 2
        return self._child(parse(text), state=self.state, fds=self.fds).run_nested()

    def run_nested(self) -> int:
        """Run in the caller's state; `exit` still ends the whole script."""
        self.shared.depth += 1
        if self.shared.depth > MAX_NESTING:
            raise ShellError(f"commands nested more than {MAX_NESTING} deep (eval, source or $(...))")
        try:
            for tree in self.program.trees:
                self._list([tree])
            return self.state.status
        finally:
            self.shared.depth -= 1

    def b_exec(self, args: list[str], assigned: dict) -> int:
        raise ShellExit(self.dispatch(args, assigned))

    def b_command(self, args: list[str], assigned: dict) -> int:
        if args and args[0] in ("-v", "-V"):
            status = 0
            for name in args[1:]:
                found = self._which(name)
                if found is None:
                    status = 1
                else:
                    self.fds[1].write(encode(found + "\n"))
            return status
        if args and args[0].startswith("-"):
            raise ShellError(f"command: unsupported option '{args[0]}'")
        return self.dispatch(args, assigned) if args else 0

    def b_env(self, args: list[str], assigned: dict) -> int:
        env = {k: v for k, v in self.state.vars.items() if k in self.state.exported} | assigned
        k = 0
        while k < len(args):
            a = args[k]
            if a in ("-i", "--ignore-environment", "-"):
                env = {}
            elif a == "-u" and k + 1 < len(args):
                env.pop(args[k + 1], None)
                k += 1
            elif a == "--":
                k += 1
                break
            elif a.startswith("-"):
                raise ShellError(f"env: unsupported option '{a}'")
            elif "=" in a and is_name(a.partition("=")[0]):
                name, _, value = a.partition("=")
                env[name] = value
            else:
                break
            k += 1
        if k >= len(args):
            for name, value in env.items():
                self.fds[1].write(encode(f"{name}={value}\n"))
            return 0
        state = self.state.copy()
        state.vars = dict(env)
        state.exported = set(env)
        child = self._child(self.program, state=state, fds=self.fds)
        return child.dispatch(args[k:], {})


def split_read(text: str, separators: str, count: int) -> list[str]:
    """Split like `read a b c`: the last name takes the rest of the line."""
    blank = "".join(c for c in separators if c in " \t\n")
    text = text.strip(blank)
    fields: list[str] = []
    while len(fields) < count - 1 and text:
        m = re.search("[" + re.escape(separators) + "]", text) if separators else None
        if not m:
            break
        fields.append(text[:m.start()])
        text = text[m.end():].lstrip(blank)
    fields.append(text)
    return fields


def is_name(text: str) -> bool:
    return bool(text) and (text[0].isalpha() or text[0] == "_") and all(c.isalnum() or c == "_" for c in text)


BUILTINS: dict[str, Callable[[_Shell, list[str], dict], int]] = {
    ":": Builtins.b_true, "true": Builtins.b_true, "false": Builtins.b_false, "cd": Builtins.b_cd,
    "export": Builtins.b_export, "unset": Builtins.b_unset, "set": Builtins.b_set, "exit": Builtins.b_exit,
    "break": Builtins.b_break, "continue": Builtins.b_continue, "eval": Builtins.b_eval,
    ".": Builtins.b_source, "source": Builtins.b_source, "exec": Builtins.b_exec,
    "command": Builtins.b_command, "env": Builtins.b_env, "read": Builtins.b_read,
    "shift": Builtins.b_shift, "local": Builtins.b_local, "return": Builtins.b_return,
}
