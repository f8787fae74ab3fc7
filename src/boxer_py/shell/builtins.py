"""The RUN shell's builtins: cd, export, set, exit, read, eval, source, env, command...

They change the shell's own state, so they get the shell (a context.Context) besides their
arguments, unlike the utilities, which only see a Call. Control flow that crosses commands
(exit, break, continue, return) travels as the exceptions of context.py.
"""
from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Callable

from boxer_py.errors import BoxerError
from boxer_py.image.rootfs import resolve
from boxer_py.shell import limits
from boxer_py.shell.context import (
    OPTION_LETTERS,
    OPTION_NAMES,
    Context,
    FunctionReturn,
    LoopControl,
    ShellExit,
)
from boxer_py.shell.parse import ShellError, parse
from boxer_py.shell.utilities.core import decode, encode

# Shell builtins this shell does not implement: refused rather than handed to `external`.
UNSUPPORTED_BUILTINS = {
    "trap", "alias", "unalias", "getopts", "wait", "ulimit", "umask", "readonly", "type", "hash", "jobs",
    "fg", "bg", "times", "declare", "typeset", "let", "shopt", "pushd", "popd", "history", "function", "select",
}

Builtin = Callable[[Context, list[str], dict[str, str]], int]   # (shell, arguments, VAR=value before the name)


def true_(shell: Context, args: list[str], assigned: dict[str, str]) -> int:
    return 0


def false_(shell: Context, args: list[str], assigned: dict[str, str]) -> int:
    return 1


def cd(shell: Context, args: list[str], assigned: dict[str, str]) -> int:
    state = shell.state
    args = [a for a in args if a not in ("-L", "-P")]
    target = args[0] if args else (state.vars.get("HOME") or "/")
    if target == "-":
        target = state.vars.get("OLDPWD") or state.cwd
    guest = posixpath.normpath(posixpath.join(state.cwd, target))
    guest = "/" + guest.lstrip("/")
    try:
        ok = resolve(shell.root, guest).is_dir()
    except BoxerError:
        ok = False
    if not ok:
        shell.err(f"sh: cd: can't cd to {target}")
        return 2
    state.vars["OLDPWD"] = state.cwd
    state.exported.add("OLDPWD")
    state.cwd = state.vars["PWD"] = guest
    return 0


def export(shell: Context, args: list[str], assigned: dict[str, str]) -> int:
    state = shell.state
    for a in args or ["-p"]:
        if a == "-p":
            for k in sorted(state.exported):
                if k in state.vars:
                    shell.fds[1].write(encode(f"export {k}={shlex.quote(state.vars[k])}\n"))
            continue
        name, eq, value = a.partition("=")
        if not is_name(name):
            shell.err(f"sh: export: {name}: bad variable name")
            return 2
        if eq:
            state.vars[name] = value
        state.exported.add(name)
    return 0


def unset(shell: Context, args: list[str], assigned: dict[str, str]) -> int:
    state = shell.state
    functions = bool(args) and args[0] == "-f"
    for a in args:
        if a in ("-v", "-f"):
            continue
        if functions:
            state.functions.pop(a, None)
            continue
        state.vars.pop(a, None)
        state.exported.discard(a)
    return 0


def shift(shell: Context, args: list[str], assigned: dict[str, str]) -> int:
    n = int(args[0]) if args and args[0].isdigit() else 1
    if n > len(shell.state.positional):
        shell.err("sh: shift: can't shift that many")
        return 2
    shell.state.positional = shell.state.positional[n:]
    return 0


def local(shell: Context, args: list[str], assigned: dict[str, str]) -> int:
    state = shell.state
    if not state.frames:
        shell.err("sh: local: not in a function")
        return 2
    frame = state.frames[-1]
    for a in args:
        name, eq, value = a.partition("=")
        if not is_name(name):
            shell.err(f"sh: local: {name}: bad variable name")
            return 2
        frame.setdefault(name, state.vars.get(name))
        if eq:
            state.vars[name] = value
    return 0


def return_(shell: Context, args: list[str], assigned: dict[str, str]) -> int:
    raise FunctionReturn(int(args[0]) & 255 if args and args[0].isdigit() else shell.state.status)


def set_(shell: Context, args: list[str], assigned: dict[str, str]) -> int:
    state = shell.state
    if not args:
        for name, value in sorted(state.vars.items()):
            shell.fds[1].write(encode(f"{name}={shlex.quote(value)}\n"))
        return 0
    k = 0
    while k < len(args):
        a = args[k]
        if a in ("-o", "+o"):
            if k + 1 >= len(args):
                for name in sorted(OPTION_NAMES):
                    shell.fds[1].write(encode(f"{name}\t{'on' if name in state.options else 'off'}\n"))
                return 0
            name = args[k + 1]
            if name not in OPTION_NAMES:
                raise ShellError(f"set: unsupported option '-o {name}'")
            (state.options.add if a == "-o" else state.options.discard)(name)
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
                    (state.options.add if a[0] == "-" else state.options.discard)(args[k])
                    continue
                if letter not in OPTION_LETTERS:
                    raise ShellError(f"set: unsupported option '{a[0]}{letter}'")
                option = OPTION_LETTERS[letter]
                (state.options.add if a[0] == "-" else state.options.discard)(option)
            k += 1
            continue
        state.positional = list(args[k + 1:] if a == "--" else args[k:])   # set -- a b
        return 0
    return 0


def exit_(shell: Context, args: list[str], assigned: dict[str, str]) -> int:
    if args and not args[0].lstrip("-").isdigit():
        shell.err(f"sh: exit: Illegal number: {args[0]}")
        raise ShellExit(2)
    raise ShellExit(int(args[0]) & 255 if args else shell.state.status)


def break_(shell: Context, args: list[str], assigned: dict[str, str]) -> int:
    raise LoopControl(int(args[0]) if args and args[0].isdigit() else 1, True)


def continue_(shell: Context, args: list[str], assigned: dict[str, str]) -> int:
    raise LoopControl(int(args[0]) if args and args[0].isdigit() else 1, False)


def read(shell: Context, args: list[str], assigned: dict[str, str]) -> int:
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
    line = shell.stdin.readline()
    parts = [decode(line or b"")]
    while not raw and parts[-1].endswith("\\\n"):   # continued lines: joined once, not one by one
        parts[-1] = parts[-1][:-2]
        parts.append(decode(shell.stdin.readline() or b""))
    text = "".join(parts)
    text = text[:-1] if text.endswith("\n") else text
    if not raw:
        text = re.sub(r"\\(.)", r"\1", text)
    separators = assigned.get("IFS", shell.get("IFS"))   # IFS=: read a b
    separators = " \t\n" if separators is None else separators
    fields = split_read(text, separators, len(names))
    for k, name in enumerate(names):
        shell.assign(name, fields[k] if k < len(fields) else "")
    return 1 if line is None else 0


def eval_(shell: Context, args: list[str], assigned: dict[str, str]) -> int:
    return shell.run_nested(parse(" ".join(args)))


def source(shell: Context, args: list[str], assigned: dict[str, str]) -> int:
    if not args:
        shell.err("sh: .: filename argument required")
        return 2
    data = limits.read_guest(shell.root, posixpath.join(shell.state.cwd, args[0]), limits.MAX_VALUE)
    if data is None:
        shell.err(f"sh: .: cannot open {args[0]}: No such file")
        return 2
    return shell.run_nested(parse(decode(data)))


def exec_(shell: Context, args: list[str], assigned: dict[str, str]) -> int:
    raise ShellExit(shell.dispatch(args, assigned))


def command(shell: Context, args: list[str], assigned: dict[str, str]) -> int:
    if args and args[0] in ("-v", "-V"):
        status = 0
        for name in args[1:]:
            found = shell.which(name)
            if found is None:
                status = 1
            else:
                shell.fds[1].write(encode(found + "\n"))
        return status
    if args and args[0].startswith("-"):
        raise ShellError(f"command: unsupported option '{args[0]}'")
    return shell.dispatch(args, assigned) if args else 0


def env(shell: Context, args: list[str], assigned: dict[str, str]) -> int:
    variables = shell.state.environment() | assigned
    k = 0
    while k < len(args):
        a = args[k]
        if a in ("-i", "--ignore-environment", "-"):
            variables = {}
        elif a == "-u" and k + 1 < len(args):
            variables.pop(args[k + 1], None)
            k += 1
        elif a == "--":
            k += 1
            break
        elif a.startswith("-"):
            raise ShellError(f"env: unsupported option '{a}'")
        elif "=" in a and is_name(a.partition("=")[0]):
            name, _, value = a.partition("=")
            variables[name] = value
        else:
            break
        k += 1
    if k >= len(args):
        for name, value in variables.items():
            shell.fds[1].write(encode(f"{name}={value}\n"))
        return 0
    state = shell.state.copy()
    state.vars = dict(variables)
    state.exported = set(variables)
    return shell.dispatch_in(state, args[k:])


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


BUILTINS: dict[str, Builtin] = {
    ":": true_, "true": true_, "false": false_, "cd": cd, "export": export, "unset": unset, "set": set_,
    "exit": exit_, "break": break_, "continue": continue_, "eval": eval_, ".": source, "source": source,
    "exec": exec_, "command": command, "env": env, "read": read, "shift": shift, "local": local,
    "return": return_,
}
