"""Word expansion for the RUN shell: quotes, parameters, arithmetic, substitution, globs.

A word becomes pieces tagged by how they were written (quoted text, unquoted text, unquoted
expansion results), then fields (only unquoted expansions split), then pathnames (only
unquoted `*?[` match). Globs list directories of the rootfs through rootfs.resolve.
"""
from __future__ import annotations

import ast
import operator
import os
import posixpath
import re
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from boxer_py.errors import BoxerError
from boxer_py.image.rootfs import resolve
from boxer_py.shell import limits
from boxer_py.shell.parse import ShellError, end_backtick, end_dquote, match_brace, match_paren
from boxer_py.shell.patterns import Glob

QUOTED, LITERAL, EXPANDED, BREAK = 0, 1, 2, 3   # BREAK: between the fields of "$@"
Piece = tuple[str, int]
Field = list[tuple[str, bool]]   # runs of characters and whether they may act as glob characters
_GLOB = re.compile(r"[*?\[]")
_PATH_MAX = 4096   # a longer pattern matches no path: it is not globbed

_PARAM = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9]|[?$#@*!-]")


class Scope(Protocol):
    """What expansion needs from the shell."""

    def get(self, name: str) -> str | None: ...
    def arguments(self) -> list[str]: ...
    def assign(self, name: str, value: str) -> None: ...
    def substitute(self, script: str) -> str: ...
    def unset_error(self, name: str) -> None: ...


class Expander:
    def __init__(self, scope: Scope, root: Path, cwd: str, noglob: bool = False):
        self.scope, self.root, self.cwd, self.noglob = scope, root, cwd, noglob

    # -- public entry points -------------------------------------------------------------
    def fields(self, text: str) -> list[str]:
        """A command word: expanded, split and globbed into zero or more arguments."""
        out: list[str] = []
        for field in split_fields(self.pieces(text), self.scope.get("IFS")):
            globbed = None if self.noglob else self.glob(field)
            out.extend(globbed if globbed else ["".join(t for t, _ in field)])
            limits.check_fields(len(out))
        return out

    def string(self, text: str) -> str:
        """An assignment value or redirect target: expanded, never split nor globbed."""
        return "".join(t for t, _ in self.pieces(text))

    def matches(self, pattern: str, value: str) -> bool:
        """A `case` pattern: quoted parts literal, unquoted `*?[` active, `*` matching `/` too."""
        return Glob([(text, kind != QUOTED) for text, kind in self.pieces(pattern)]).fullmatch(value)

    def heredoc(self, body: str) -> str:
        return "".join(t for t, _ in self.pieces(body, mode="heredoc"))

    # -- pieces --------------------------------------------------------------------------
    def pieces(self, s: str, mode: str = "plain") -> list[Piece]:
        """mode: plain (a word), dquote (inside "..."), heredoc (an unquoted here-doc body),
        bracedq (the word of "${X:-word}": quoted, but its own "..." are removed)."""
        quoted = mode != "plain"
        kind = QUOTED if quoted else LITERAL
        out: list[Piece] = []
        i, n = 0, len(s)
        size, counted = 0, 0
        while i < n:
            while counted < len(out):   # the word as it grows, before anything joins it
                size += len(out[counted][0])
                counted += 1
            limits.check_value(size)
            c = s[i]
            if c == "\\":
                nxt = s[i + 1] if i + 1 < n else ""
                if nxt == "\n":
                    i += 2
                elif not nxt:
                    out.append(("\\", kind))
                    i += 1
                elif quoted and nxt not in ('$`\\' + ('"' if mode in ("dquote", "bracedq") else "")):
                    out.append(("\\" + nxt, QUOTED))
                    i += 2
                else:
                    out.append((nxt, QUOTED))
                    i += 2
            elif c == "'" and not quoted:
                end = s.find("'", i + 1)
                if end < 0:
                    raise ShellError("unterminated single quote")
                out.append((s[i + 1:end], QUOTED))
                i = end + 1
            elif c == '"' and mode in ("plain", "bracedq"):
                end = end_dquote(s, i + 1)
                if s[i + 1:end] not in ("$@", "${@}") or self.scope.arguments():   # "$@" of nothing: no field
                    out.append(("", QUOTED))
                    out.extend(self.pieces(s[i + 1:end], "dquote"))
                i = end + 1
            elif c == "`":
                end = end_backtick(s, i + 1)
                inner = re.sub(r"\\([\\`$])", r"\1", s[i + 1:end])
                out.append((self.scope.substitute(inner), QUOTED if quoted else EXPANDED))
                i = end + 1
            elif c == "$":
                got, i = self._dollar(s, i, quoted)
                out.extend(got)
            elif c == "~" and i == 0 and not quoted:
                end = s.find("/")
                user = s[1:end if end >= 0 else n]
                if user:
                    out.append(("~", LITERAL))
                    i += 1
                else:
                    out.append((self.scope.get("HOME") or "/root", QUOTED))
                    i += 1
            else:
                out.append((c, kind))
                i += 1
        limits.check_value(size + sum(len(t) for t, _ in out[counted:]))
        return out

    def _dollar(self, s: str, i: int, quoted: bool) -> tuple[list[Piece], int]:
        kind = QUOTED if quoted else EXPANDED
        if s.startswith("$((", i):
            end = match_paren(s, i + 1)
            if s[end - 1] != ")":
                raise ShellError(f"unsupported arithmetic {s[i:end + 1]!r}")
            expr = "".join(t for t, _ in self.pieces(s[i + 3:end - 1], "dquote"))
            limits.check_arithmetic(expr)
            return [(str(arithmetic(expr, self.scope.get)), kind)], end + 1
        if s.startswith("$(", i):
            end = match_paren(s, i + 1)
            return [(self.scope.substitute(s[i + 2:end]), kind)], end + 1
        if s.startswith("${", i):
            end = match_brace(s, i + 1)
            return self._braced(s[i + 2:end], quoted), end + 1
        m = _PARAM.match(s, i + 1)
        if not m:
            return [("$", QUOTED if quoted else LITERAL)], i + 1
        if m.group() == "@" and quoted:
            return self._each_argument(), m.end()
        return [(self._value(m.group()), kind)], m.end()

    def _each_argument(self) -> list[Piece]:
        """"$@": one field per positional parameter."""
        pieces: list[Piece] = []
        for k, arg in enumerate(self.scope.arguments()):
            if k:
                pieces.append((" ", BREAK))
            pieces.append((arg, QUOTED))
        return pieces

    def _value(self, name: str) -> str:
        value = self.scope.get(name)
        if value is None:
            self.scope.unset_error(name)
            return ""
        return value

    def _braced(self, body: str, quoted: bool) -> list[Piece]:
        kind = QUOTED if quoted else EXPANDED
        if body.startswith("#") and len(body) > 1:
            m = _PARAM.fullmatch(body, 1)
            if not m:
                raise ShellError(f"unsupported parameter expansion ${{{body}}}")
            return [(str(len(self._value(m.group()))), kind)]
        m = _PARAM.match(body)
        if not m:
            raise ShellError(f"bad substitution ${{{body}}}")
        name, rest = m.group(), body[m.end():]
        if not rest:
            return self._each_argument() if name == "@" and quoted else [(self._value(name), kind)]
        value = self.scope.get(name)
        for op in (":-", ":=", ":+", ":?", "-", "=", "+", "?", "##", "#", "%%", "%"):
            if rest.startswith(op):
                word = rest[len(op):]
                break
        else:
            raise ShellError(f"unsupported parameter expansion ${{{body}}}")
        unset = value is None or (op.startswith(":") and value == "")
        current = value if value is not None else ""
        word_pieces = lambda: self.pieces(word, "bracedq" if quoted else "plain")  # noqa: E731
        if op in (":-", "-"):
            return word_pieces() if unset else [(current, kind)]
        if op in (":=", "="):
            if unset:
                current = "".join(t for t, _ in word_pieces())
                self.scope.assign(name, current)
            return [(current, kind)]
        if op in (":+", "+"):
            return word_pieces() if not unset else []
        if op in (":?", "?"):
            if unset:
                message = "".join(t for t, _ in word_pieces()) or "parameter null or not set"
                raise ShellError(f"{name}: {message}")
            return [(current, kind)]
        if value is None:
            self.scope.unset_error(name)
        pattern = [(t, k != QUOTED) for t, k in self.pieces(word, "plain")]
        return [(_trim(current, pattern, op), kind)]

    # -- globbing ------------------------------------------------------------------------
    def glob(self, field: Field) -> list[str] | None:
        """Matching paths in the rootfs, sorted; None when the field has no active pattern."""
        if not _has_pattern(field):
            return None
        if sum(len(t) for t, _ in field) > _PATH_MAX:
            return None
        comps: list[Field] = [[]]
        for text, active in field:
            for k, part in enumerate(text.split("/")):
                if k:
                    comps.append([])
                if part:
                    comps[-1].append((part, active))
        results: list[list[str]] = [[]]
        absolute = field[0][0].startswith("/")
        for comp in comps:
            text = "".join(t for t, _ in comp)
            if not any(active and _GLOB.search(t) for t, active in comp):
                results = [r + [text] for r in results]
                continue
            pattern = Glob(comp)
            hidden_ok = text.startswith(".")
            found: list[list[str]] = []
            for r in results:
                written = "/".join(r) or ("/" if absolute else ".")
                host = self._resolve(posixpath.join(self.cwd, written))
                if host is None or not host.is_dir():
                    continue
                try:
                    names = sorted(os.listdir(host))
                except OSError:
                    continue
                found.extend(r + [name] for name in names
                             if (hidden_ok or not name.startswith(".")) and pattern.fullmatch(name))
                limits.check_fields(len(found), "a glob pattern's list of paths")
            results = found
        paths = ["/".join(r) for r in results]
        last_literal = not any(active and _GLOB.search(t) for t, active in comps[-1])
        if last_literal:
            paths = [p for p in paths if self._exists(p)]
        return paths or None

    def _resolve(self, guest: str, follow_last: bool = True) -> Path | None:
        try:
            return resolve(self.root, guest, follow_last)
        except BoxerError:
            return None

    def _exists(self, written: str) -> bool:
        host = self._resolve(posixpath.join(self.cwd, written), follow_last=False)
        return host is not None and (host.is_symlink() or host.exists())


def _has_pattern(field: Field) -> bool:
    """Whether an active `*` or `?`, or an active `[` with a `]` after it, is in the field (a lone
    `[`, as in `[ -f x ]`, lists no directory)."""
    bracket = False
    for text, active in field:
        if active and ("*" in text or "?" in text):
            return True
        if bracket and "]" in text:
            return True
        if active and "[" in text:
            bracket = True
            if "]" in text[text.index("["):]:
                return True
    return False


def split_fields(pieces: list[Piece], ifs: str | None) -> list[Field]:
    separators = " \t\n" if ifs is None else ifs
    fields: list[Field] = []
    current: Field | None = None
    for text, kind in pieces:
        if kind == BREAK:
            fields.append(current if current is not None else [])
            current = []
        elif kind == EXPANDED and separators:
            for k, part in enumerate(_split_on(text, separators)):
                if k:   # a separator run ended the field before it
                    if current is not None:
                        fields.append(current)
                    current = None
                if part:
                    current = current if current is not None else []
                    current.append((part, True))
        else:
            current = current if current is not None else []
            if text or not current:
                current.append((text, kind != QUOTED))
    if current is not None:
        fields.append(current)
    return fields


def _split_on(text: str, separators: str) -> list[str]:
    """`text` cut at every separator character (empty parts where separators follow each other)."""
    return re.split("[" + re.escape(separators) + "]", text)


def _trim(value: str, pattern: Field, op: str) -> str:
    """${X#pat} ${X##pat} ${X%pat} ${X%%pat}: one pass of the pattern's NFA over the value."""
    glob = Glob(pattern)
    if op in ("#", "##"):
        k = glob.prefix(value, longest=op == "##")
        return value if k is None else value[k:]
    k = glob.reversed().prefix(value[::-1], longest=op == "%%")
    return value if k is None else value[:len(value) - k]


# -- arithmetic ------------------------------------------------------------------------------
_DIVISION = (ast.Div, ast.FloorDiv, ast.Mod)   # truncating toward zero, refusing zero
_BINARY: dict[type[ast.operator], Callable[[int, int], int]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Pow: operator.pow,
    ast.LShift: operator.lshift, ast.RShift: operator.rshift, ast.BitAnd: operator.and_, ast.BitOr: operator.or_,
    ast.BitXor: operator.xor}
_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
            ast.Gt: operator.gt, ast.GtE: operator.ge}


def _int64(value: int) -> int:
    """Shell arithmetic is signed 64-bit: wrap, so no expression can grow without bound."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >> 63 else value


def arithmetic(expr: str, get: Callable[[str], str | None]) -> int:
    """POSIX $((...)) on integers: + - * / % ** << >> & | ^ comparisons && || ! ~ and names."""
    py = re.sub(r"\b0([0-7]+)\b", lambda m: str(int(m.group(1), 8)), expr)   # octal literals
    py = re.sub(r"&&", " and ", py)
    py = re.sub(r"\|\|", " or ", py)
    py = re.sub(r"!(?!=)", " not ", py)
    try:
        tree = ast.parse(py.strip() or "0", mode="eval")
    except (SyntaxError, ValueError):
        raise ShellError(f"arithmetic expression not supported: $(({expr}))") from None

    def number(text: str) -> int:
        text = text.strip() or "0"
        try:
            return int(text, 0) if not re.fullmatch(r"0[0-7]+", text) else int(text, 8)
        except ValueError:
            raise ShellError(f"arithmetic: {text!r} is not a number") from None

    def ev(node: ast.AST) -> int:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return _int64(node.value)
        if isinstance(node, ast.Name):
            return _int64(number(get(node.id) or "0"))
        if isinstance(node, ast.UnaryOp):
            v = ev(node.operand)
            ops = {ast.USub: -v, ast.UAdd: v, ast.Invert: ~v, ast.Not: int(not v)}
            return _int64(ops[type(node.op)])
        if isinstance(node, ast.BinOp) and (type(node.op) in _BINARY or isinstance(node.op, _DIVISION)):
            a, b = ev(node.left), ev(node.right)
            if isinstance(node.op, _DIVISION):
                if b == 0:
                    raise ShellError(f"arithmetic: division by zero in $(({expr}))")
                q = abs(a) // abs(b) * (1 if (a >= 0) == (b >= 0) else -1)
                return q if not isinstance(node.op, ast.Mod) else a - q * b
            if isinstance(node.op, ast.Pow):
                if b < 0:
                    raise ShellError(f"arithmetic: negative exponent in $(({expr}))")
                return _int64(pow(a, b, 1 << 64))
            if isinstance(node.op, (ast.LShift, ast.RShift)):
                b &= 63
            return _int64(_BINARY[type(node.op)](a, b))
        if isinstance(node, ast.BoolOp):
            values = [ev(v) for v in node.values]
            return int(all(values) if isinstance(node.op, ast.And) else any(values))
        if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE:
            return int(_COMPARE[type(node.ops[0])](ev(node.left), ev(node.comparators[0])))
        raise ShellError(f"arithmetic expression not supported: $(({expr}))")

    return ev(tree)
