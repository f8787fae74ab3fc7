"""`test` and `[` for the RUN shell: the expression parser (-o, -a, !, parentheses) and its
file, string and integer tests; files are looked at inside the rootfs only.
"""
from __future__ import annotations

import stat

from boxer_py.shell.utilities.core import (
    Call,
    Failure,
    Utility,
)

_UNARY = set("efdLhsxrwznpSbcgukt")
_BINARY_TEST = {"=", "==", "!=", "-eq", "-ne", "-lt", "-gt", "-le", "-ge", "-nt", "-ot", "<", ">"}


class _TestError(Exception):
    pass


def test(call: Call) -> int:
    args = list(call.args)
    if call.name == "[":
        if not args or args[-1] != "]":
            return call.fail("missing ]", 2)
        args = args[:-1]
    try:
        pos, value = _test_or(call, args, 0)
        if pos != len(args):
            raise _TestError(f"unexpected argument '{args[pos]}'")
        return 0 if value else 1
    except _TestError as e:
        return call.fail(str(e), 2)


def _test_or(call: Call, a: list[str], i: int) -> tuple[int, bool]:
    i, value = _test_and(call, a, i)
    while i < len(a) and a[i] == "-o":
        i, right = _test_and(call, a, i + 1)
        value = value or right
    return i, value


def _test_and(call: Call, a: list[str], i: int) -> tuple[int, bool]:
    i, value = _test_not(call, a, i)
    while i < len(a) and a[i] == "-a":
        i, right = _test_not(call, a, i + 1)
        value = value and right
    return i, value


def _test_not(call: Call, a: list[str], i: int) -> tuple[int, bool]:
    if i < len(a) and a[i] == "!" and i + 1 < len(a):
        i, value = _test_not(call, a, i + 1)
        return i, not value
    return _test_primary(call, a, i)


def _test_primary(call: Call, a: list[str], i: int) -> tuple[int, bool]:
    if i >= len(a):
        return i, False
    if i + 2 < len(a) and a[i + 1] in _BINARY_TEST:
        return i + 3, _test_binary(call, a[i], a[i + 1], a[i + 2])
    if a[i] == "(":
        i, value = _test_or(call, a, i + 1)
        if i >= len(a) or a[i] != ")":
            raise _TestError("missing )")
        return i + 1, value
    if len(a[i]) == 2 and a[i][0] == "-" and a[i][1] in _UNARY and i + 1 < len(a):
        return i + 2, _test_unary(call, a[i][1], a[i + 1])
    return i + 1, a[i] != ""


def _test_unary(call: Call, op: str, arg: str) -> bool:
    if op == "z":
        return arg == ""
    if op == "n":
        return arg != ""
    if op == "t":
        return False
    try:
        host = call.host(arg, follow_last=op not in "Lh")
    except Failure:
        return False
    if op in "Lh":
        return host.is_symlink()
    if not host.exists():
        return False
    mode = host.stat().st_mode
    checks = {"e": True, "f": stat.S_ISREG(mode), "d": stat.S_ISDIR(mode), "s": host.stat().st_size > 0,
              "x": bool(mode & 0o111), "r": True, "w": True, "p": stat.S_ISFIFO(mode),
              "S": stat.S_ISSOCK(mode), "b": stat.S_ISBLK(mode), "c": stat.S_ISCHR(mode),
              "g": bool(mode & stat.S_ISGID), "u": bool(mode & stat.S_ISUID), "k": bool(mode & stat.S_ISVTX)}
    return checks[op]


def _test_binary(call: Call, left: str, op: str, right: str) -> bool:
    if op in ("=", "=="):
        return left == right
    if op == "!=":
        return left != right
    if op in ("<", ">"):
        return left < right if op == "<" else left > right
    if op in ("-nt", "-ot"):
        def mtime(p: str) -> float | None:
            try:
                h = call.host(p)
                return h.stat().st_mtime if h.exists() else None
            except Failure:
                return None
        a, b = mtime(left), mtime(right)
        if op == "-nt":
            return a is not None and (b is None or a > b)
        return b is not None and (a is None or a < b)
    try:
        x, y = int(left.strip()), int(right.strip())
    except ValueError:
        raise _TestError(f"illegal number: {left if not left.strip().lstrip('-').isdigit() else right}") from None
    return {"-eq": x == y, "-ne": x != y, "-lt": x < y, "-gt": x > y, "-le": x <= y, "-ge": x >= y}[op]


UTILITIES: dict[str, Utility] = {"test": test, "[": test}
