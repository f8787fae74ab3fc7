"""`find` for the RUN shell: its expression language (parsed into _Find nodes) and a walk of the
rootfs that never follows symlinks.
"""
from __future__ import annotations

import functools
import os
import posixpath
from dataclasses import dataclass
from pathlib import Path

from boxer_py.shell.parse import ShellError
from boxer_py.shell.patterns import Glob
from boxer_py.shell.utilities.core import Call, Failure, Utility, lexists, real_dir


@dataclass
class _Find:
    """A parsed `find` expression node: ('and'|'or', a, b), ('not', a) or a primary."""
    op: str
    args: tuple


class _FindRun:
    def __init__(self, call: Call, expr: _Find, post_order: bool, mindepth: int, maxdepth: int | None):
        self.call, self.expr, self.post_order = call, expr, post_order
        self.mindepth, self.maxdepth = mindepth, maxdepth
        self.batches: dict[int, tuple[list[str], list[str]]] = {}
        self.status = 0
        self.pruned = False

    def walk(self, shown: str, host: Path, depth: int) -> None:
        descend = real_dir(host) and (self.maxdepth is None or depth < self.maxdepth)
        self.pruned = False
        if not self.post_order and depth >= self.mindepth:
            self.eval(self.expr, shown, host)
        if descend and not self.pruned:
            try:
                names = sorted(os.listdir(host))
            except OSError:
                self.status = self.call.fail(f"'{shown}': No such file or directory")
                names = []
            for name in names:
                child = shown + name if shown.endswith("/") else f"{shown}/{name}"
                self.walk(child, host / name, depth + 1)
        if self.post_order and depth >= self.mindepth:
            self.eval(self.expr, shown, host)

    def eval(self, node: _Find, shown: str, host: Path) -> bool:
        op, a = node.op, node.args
        if op == "and":
            return self.eval(a[0], shown, host) and self.eval(a[1], shown, host)
        if op == "or":
            return self.eval(a[0], shown, host) or self.eval(a[1], shown, host)
        if op == "not":
            return not self.eval(a[0], shown, host)
        if op in ("name", "iname"):
            name = posixpath.basename(shown.rstrip("/")) or shown
            return _fnmatch(name, a[0], op == "iname")
        if op in ("path", "ipath"):
            return _fnmatch(shown, a[0], op == "ipath")
        if op == "type":
            kinds = a[0].split(",")
            if host.is_symlink():
                return "l" in kinds
            if not host.exists():
                return False
            return ("d" if host.is_dir() else "f" if host.is_file() else "?") in kinds
        if op == "empty":
            if host.is_symlink():
                return False
            return not any(host.iterdir()) if host.is_dir() else host.stat().st_size == 0
        if op in ("print", "print0"):
            self.call.print(shown + ("\n" if op == "print" else "\0"))
            return True
        if op == "true":
            return True
        if op == "false":
            return False
        if op == "prune":
            self.pruned = True
            return True
        if op == "delete":
            try:
                host.rmdir() if real_dir(host) else host.unlink()
            except OSError as e:
                self.status = self.call.fail(f"cannot delete '{shown}': {e.strerror}")
                return False
            return True
        if op == "exec":
            command, batch = list(a[0]), a[1]
            if batch:
                self.batches.setdefault(id(node), (command, []))[1].append(shown)
                return True
            return self.call.run([arg.replace("{}", shown) for arg in command]) == 0
        raise ShellError(f"find: unsupported expression '-{op}'")

    def finish(self) -> int:
        for command, paths in self.batches.values():
            at = command.index("{}")
            if self.call.run(command[:at] + paths + command[at + 1:]) != 0:
                self.status = 1
        return self.status


def _fnmatch(text: str, pattern: str, fold: bool) -> bool:
    """find's -name/-path: a shell pattern matched by regex.Glob (no backtracking regex)."""
    return _glob(pattern, fold).fullmatch(text)


@functools.lru_cache(maxsize=64)
def _glob(pattern: str, fold: bool) -> Glob:
    return Glob.from_text(pattern, fold)


_FIND_TESTS = {"-name": 1, "-iname": 1, "-path": 1, "-ipath": 1, "-wholename": 1, "-type": 1, "-empty": 0,
               "-print": 0, "-print0": 0, "-delete": 0, "-prune": 0, "-true": 0, "-false": 0}
_FIND_ACTIONS = {"print", "print0", "delete", "exec", "prune"}


def find_files(call: Call) -> int:
    args = list(call.args)
    while args and args[0] in ("-P", "-H"):
        args.pop(0)
    if args and args[0] == "-L":
        raise ShellError("find: unsupported option '-L' (following symlinks)")
    starts = []
    while args and not args[0].startswith("-") and args[0] not in ("(", "!", ")"):
        starts.append(args.pop(0))
    post_order, mindepth = False, 0
    maxdepth: int | None = None
    tokens = []
    k = 0
    while k < len(args):
        a = args[k]
        if a in ("-depth", "-d"):
            post_order = True
        elif a in ("-maxdepth", "-mindepth"):
            if k + 1 >= len(args) or not args[k + 1].isdigit():
                raise ShellError(f"find: {a} needs a number")
            if a == "-maxdepth":
                maxdepth = int(args[k + 1])
            else:
                mindepth = int(args[k + 1])
            k += 1
        elif a in ("-xdev", "-mount", "-noleaf", "-ignore_readdir_race"):
            pass
        else:
            tokens.append(a)
        k += 1
    parser = _FindParser(tokens)
    expr = parser.parse() if tokens else _Find("true", ())
    if "delete" in parser.seen:
        post_order = True
    if not parser.seen & _FIND_ACTIONS - {"prune"}:
        expr = _Find("and", (expr, _Find("print", ())))
    run = _FindRun(call, expr, post_order, mindepth, maxdepth)
    for start in starts or ["."]:
        try:
            host = call.host(start, follow_last=False)
        except Failure as e:
            run.status = call.fail(str(e))
            continue
        if not lexists(host):
            run.status = call.fail(f"'{start}': No such file or directory")
            continue
        run.walk(start, host, 0)
    return run.finish()


class _FindParser:
    def __init__(self, tokens: list[str]):
        self.tokens, self.pos = tokens, 0
        self.seen: set[str] = set()   # the primaries used

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def parse(self) -> _Find:
        expr = self.or_()
        if self.peek() is not None:
            raise ShellError(f"find: unexpected '{self.peek()}'")
        return expr

    def or_(self) -> _Find:
        left = self.and_()
        while self.peek() in ("-o", "-or"):
            self.pos += 1
            left = _Find("or", (left, self.and_()))
        return left

    def and_(self) -> _Find:
        left = self.not_()
        while self.peek() not in (None, "-o", "-or", ")"):
            if self.peek() in ("-a", "-and"):
                self.pos += 1
            left = _Find("and", (left, self.not_()))
        return left

    def not_(self) -> _Find:
        if self.peek() in ("!", "-not"):
            self.pos += 1
            return _Find("not", (self.not_(),))
        return self.primary()

    def primary(self) -> _Find:
        token = self.peek()
        if token is None:
            raise ShellError("find: expression expected")
        self.pos += 1
        if token == "(":
            inner = self.or_()
            if self.peek() != ")":
                raise ShellError("find: missing )")
            self.pos += 1
            return inner
        if token in ("-exec", "-execdir"):
            if token == "-execdir":
                raise ShellError("find: unsupported expression '-execdir'")
            command = []
            while self.peek() not in (";", "+", None):
                command.append(self.tokens[self.pos])
                self.pos += 1
            end = self.peek()
            if end is None or not command or (end == "+" and "{}" not in command):
                raise ShellError("find: -exec needs a command ending with ';' or '{} +'")
            self.pos += 1
            self.seen.add("exec")
            return _Find("exec", (tuple(command), end == "+"))
        if token not in _FIND_TESTS:
            raise ShellError(f"find: unsupported expression '{token}'")
        values = self.tokens[self.pos:self.pos + _FIND_TESTS[token]]
        if len(values) < _FIND_TESTS[token]:
            raise ShellError(f"find: {token} needs a value")
        self.pos += len(values)
        op = "path" if token == "-wholename" else token[1:]
        self.seen.add(op)
        return _Find(op, tuple(values))


UTILITIES: dict[str, Utility] = {"find": find_files}
