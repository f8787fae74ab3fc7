"""Regular expressions (sed, grep) from a Dockerfile, matched on the build host without
backtracking blow-ups.

A POSIX basic or extended expression is parsed here into a small tree. Matching then takes
one of two engines, chosen per input:
- Python's `re` (fast, in C) when the expression cannot blow up on that input: no quantifier
  over something that itself repeats or alternates, no back-reference needing it, and an
  estimate of its backtracking (input length to the power of the number of quantifiers, times
  the alternatives) under RE_COST;
- otherwise a Pike VM (Thompson's NFA simulation with submatches, the same leftmost-first
  answers as `re`): time linear in the input times the expression, each step counted toward
  limits.MAX_MATCH_STEPS. A back-reference cannot be simulated that way: such an expression
  on an input where `re` could blow up is refused.
Shell patterns are in patterns.py (an NFA simulation too, on the same budget).
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from boxer_py.errors import ShellError
from boxer_py.shell import limits
from boxer_py.shell.patterns import CharSet, parse_bracket

RE_COST = 5_000_000   # estimated backtracking steps under which `re` runs an expression
_RE_SPEEDUP = 32      # `re` (in C) against the VM: what one budget step buys of each

# -- regular expressions: parsing ------------------------------------------------------------------
# A tree of tuples: ("lit", c) ("any",) ("set", CharSet) ("assert", kind) ("cat", [..]) ("alt", [..])
# ("group", n, node) ("rep", node, min, max|None) ("backref", n); assert kinds: ^ $ b B < >

class _Parser:
    def __init__(self, pattern: str, extended: bool):
        self.p, self.i, self.ere = pattern, 0, extended
        self.groups = 0

    def error(self, why: str) -> ShellError:
        return ShellError(f"cannot use the regular expression '{self.p[:80]}' ({why})")

    def parse(self) -> Any:
        node = self.alternation(top=True)
        if self.i < len(self.p):
            raise self.error("unmatched )")
        return node

    def at_close(self) -> bool:
        return self.p.startswith(")" if self.ere else "\\)", self.i)

    def at_bar(self) -> bool:
        return self.p.startswith("|" if self.ere else "\\|", self.i)

    def alternation(self, top: bool = False) -> Any:
        branches = [self.sequence()]
        while self.at_bar():
            self.i += 1 if self.ere else 2
            branches.append(self.sequence())
        if not top and not self.at_close():
            raise self.error("unmatched (")
        return branches[0] if len(branches) == 1 else ("alt", branches)

    def sequence(self) -> Any:
        items: list[Any] = []
        start = True
        while self.i < len(self.p) and not self.at_close() and not self.at_bar():
            atom = self.atom(start, items)
            start = atom == ("assert", "^")   # a * right after ^ is literal too
            items.append(atom if start else self.quantified(atom))
        return ("cat", items)

    def atom(self, start: bool, items: list) -> Any:
        p, i = self.p, self.i
        c = p[i]
        if c == "^" and (self.ere or start):
            self.i += 1
            return ("assert", "^")
        if c == "$" and (self.ere or i + 1 == len(p) or p.startswith("\\)", i + 1) or p.startswith("\\|", i + 1)):
            self.i += 1
            return ("assert", "$")
        if c == "*" and start:   # a leading * is literal in a BRE (and in GNU's ERE)
            self.i += 1
            return ("lit", "*")
        if c == ".":
            self.i += 1
            return ("any",)
        if c == "[":
            found = parse_bracket(p, i + 1)
            if found is None:
                raise self.error("unterminated [")
            self.i = found[1]
            return ("set", found[0])
        if self.ere and c == "(":
            return self.group(1)
        if self.ere and c in "*+?":
            raise self.error(f"nothing to repeat before {c}")
        if self.ere and c == "{" and re.match(r"\{\d", p[i:]):
            raise self.error("nothing to repeat before {")
        if c == "\\":
            if i + 1 >= len(p):
                raise self.error("trailing backslash")
            n = p[i + 1]
            if not self.ere and n == "(":
                return self.group(2)
            if not self.ere and n in "{+?" and start:
                self.i += 2
                return ("lit", n)
            self.i += 2
            if n.isdigit() and n != "0":
                if int(n) > self.groups:
                    raise self.error(f"invalid back reference \\{n}")
                return ("backref", int(n))
            specials = {"n": ("lit", "\n"), "t": ("lit", "\t"), "w": ("set", CharSet(False, frozenset(), (), ("word",))),
                        "W": ("set", CharSet(True, frozenset(), (), ("word",))),
                        "s": ("set", CharSet(False, frozenset(), (), ("space",))),
                        "S": ("set", CharSet(True, frozenset(), (), ("space",))),
                        "b": ("assert", "b"), "B": ("assert", "B"), "<": ("assert", "<"), ">": ("assert", ">"),
                        "`": ("assert", "^"), "'": ("assert", "$")}
            return specials.get(n, ("lit", n))
        self.i += 1
        return ("lit", c)

    def group(self, width: int) -> Any:
        self.i += width
        self.groups += 1
        number = self.groups
        inner = self.alternation()
        self.i += width   # the closing ) or \)
        return ("group", number, inner)

    def quantified(self, atom: Any) -> Any:
        p = self.p
        while self.i < len(p):
            c = p[self.i]
            lo: int
            hi: int | None
            if c == "*":
                lo, hi, width = 0, None, 1
            elif self.ere and c in "+?":
                lo, hi, width = (1, None, 1) if c == "+" else (0, 1, 1)
            elif not self.ere and p.startswith(("\\+", "\\?"), self.i):
                lo, hi, width = (1, None, 2) if p[self.i + 1] == "+" else (0, 1, 2)
            elif p.startswith("{" if self.ere else "\\{", self.i):
                m = re.match(r"(\d+)(,(\d*))?" + ("\\}" if self.ere else r"\\\}"), p[self.i + (1 if self.ere else 2):])
                if not m:
                    if self.ere:
                        return atom   # a { that starts no interval is itself
                    raise self.error("bad interval \\{...\\}")
                if len(m.group(1)) > 5 or len(m.group(3) or "") > 5:
                    raise self.error("interval count too large")
                lo = int(m.group(1))
                hi = lo if m.group(2) is None else (int(m.group(3)) if m.group(3) else None)
                if hi is not None and hi < lo:
                    raise self.error("interval {m,n} with n < m")
                width = (1 if self.ere else 2) + m.end()
            else:
                return atom
            if atom[0] == "assert":
                raise self.error("a quantifier after an anchor")
            self.i += width
            atom = ("rep", atom, lo, hi)
        return atom


# -- regular expressions: analysis and the Python form ---------------------------------------------
def _varies(node: Any) -> bool:
    """Can this node match in more than one way (repeat, alternate or refer back)?"""
    kind = node[0]
    if kind == "rep":
        return node[2] != node[3] or _varies(node[1])
    if kind == "alt":
        return True
    if kind == "backref":
        return True
    if kind == "cat":
        return any(_varies(n) for n in node[1])
    if kind == "group":
        return _varies(node[2])
    return False


@dataclass
class _Shape:
    unbounded: int = 0           # quantifiers without an upper bound: each multiplies by the input length
    fixed: float = 0.0           # log of the choices bounded quantifiers and alternations add
    nested: bool = False         # a quantifier over something that varies: exponential backtracking
    backrefs: bool = False
    size: int = 0


def _shape(node: Any, shape: _Shape) -> None:
    kind = node[0]
    shape.size += 1
    if kind == "rep":
        child, lo, hi = node[1], node[2], node[3]
        if _varies(child):
            shape.nested = True
        if hi is None:
            shape.unbounded += 1
        elif hi != lo:
            shape.fixed += math.log(hi - lo + 1)
        _shape(child, shape)
    elif kind == "alt":
        shape.fixed += math.log(len(node[1]))
        for n in node[1]:
            _shape(n, shape)
    elif kind == "cat":
        for n in node[1]:
            _shape(n, shape)
    elif kind == "group":
        _shape(node[2], shape)
    elif kind == "backref":
        shape.backrefs = True


def _python(node: Any) -> str:
    kind = node[0]
    if kind == "lit":
        return re.escape(node[1])
    if kind == "any":
        return "(?s:.)"
    if kind == "set":
        return node[1].python()
    if kind == "assert":
        return {"^": r"\A", "$": r"\Z", "b": r"\b", "B": r"\B", "<": r"\b(?=\w)", ">": r"\b(?<=\w)"}[node[1]]
    if kind == "cat":
        return "".join(_python(n) for n in node[1])
    if kind == "alt":
        return "(?:" + "|".join(_python(n) for n in node[1]) + ")"
    if kind == "group":
        return "(" + _python(node[2]) + ")"
    if kind == "backref":
        return f"(?:\\{node[1]})"
    inner, lo, hi = "(?:" + _python(node[1]) + ")", node[2], node[3]
    if (lo, hi) == (0, None):
        return inner + "*"
    if (lo, hi) == (1, None):
        return inner + "+"
    if (lo, hi) == (0, 1):
        return inner + "?"
    return inner + "{" + str(lo) + ("," + ("" if hi is None else str(hi)) if hi != lo else "") + "}"


# -- the Pike VM ---------------------------------------------------------------------------------------
# Instructions: ("char", c) ("set", CharSet) ("any",) ("assert", kind) ("split", x, y) ("jmp", x)
# ("save", k) ("match",); split prefers x (leftmost-first, like `re`).

def _compile(node: Any, prog: list, fold: bool) -> None:
    if len(prog) > limits.MAX_PROGRAM:
        raise ShellError(f"a regular expression compiles to more than {limits.MAX_PROGRAM} steps "
                         "(too many or too large {m,n} intervals)")
    kind = node[0]
    if kind == "lit":
        c = node[1]
        if fold and c.lower() != c.upper():
            prog.append(("set", CharSet(False, frozenset({c.lower(), c.upper()}), (), ())))
        else:
            prog.append(("char", c))
    elif kind in ("any", "set", "assert"):
        prog.append(node)
    elif kind == "cat":
        for n in node[1]:
            _compile(n, prog, fold)
    elif kind == "group":
        prog.append(("save", 2 * node[1]))
        _compile(node[2], prog, fold)
        prog.append(("save", 2 * node[1] + 1))
    elif kind == "alt":
        jumps = []
        branches = node[1]
        for k, branch in enumerate(branches):
            if k < len(branches) - 1:
                split = len(prog)
                prog.append(None)
                _compile(branch, prog, fold)
                jumps.append(len(prog))
                prog.append(None)
                prog[split] = ("split", split + 1, len(prog))
            else:
                _compile(branch, prog, fold)
        for j in jumps:
            prog[j] = ("jmp", len(prog))
    elif kind == "rep":
        child, lo, hi = node[1], node[2], node[3]
        for _ in range(lo):
            _compile(child, prog, fold)
        if hi is None:
            loop = len(prog)
            prog.append(None)
            _compile(child, prog, fold)
            prog.append(("jmp", loop))
            prog[loop] = ("split", loop + 1, len(prog))
        else:
            holes = []
            for _ in range(hi - lo):
                holes.append(len(prog))
                prog.append(None)
                _compile(child, prog, fold)
            for h in holes:
                prog[h] = ("split", h + 1, len(prog))
    else:
        raise ShellError("a back-reference cannot be matched without backtracking")


def _word(text: str, i: int) -> bool:
    return 0 <= i < len(text) and (text[i].isalnum() or text[i] == "_")


def _assert(kind: str, text: str, i: int) -> bool:
    if kind == "^":
        return i == 0
    if kind == "$":
        return i == len(text)
    before, after = _word(text, i - 1), _word(text, i)
    if kind == "b":
        return before != after
    if kind == "B":
        return before == after
    if kind == "<":
        return after and not before
    return before and not after


class Match:
    """What `re.Match` offers the utilities: span, start, end and group(n)."""

    def __init__(self, text: str, caps: tuple):
        self.text, self.caps = text, caps

    def span(self, k: int = 0) -> tuple[int, int]:
        return self.caps[2 * k], self.caps[2 * k + 1]

    def start(self, k: int = 0) -> int:
        return self.caps[2 * k]

    def end(self, k: int = 0) -> int:
        return self.caps[2 * k + 1]

    def group(self, k: int = 0) -> str | None:
        s, e = self.caps[2 * k], self.caps[2 * k + 1]
        return None if s is None or e is None or s < 0 else self.text[s:e]


def _pike(prog: list, ngroups: int, text: str, pos: int, fold: bool) -> Match | None:
    budget = limits.budget()
    n, size = len(text), len(prog)
    marks = [-1] * size
    empty = (None,) * (2 * ngroups + 2)
    matched: tuple | None = None
    steps = 0

    def add(threads: list, pc: int, caps: tuple, i: int) -> int:
        stack = [(pc, caps)]
        count = 0
        while stack:
            pc, caps = stack.pop()
            if marks[pc] == i:
                continue
            marks[pc] = i
            count += 1
            op = prog[pc]
            kind = op[0]
            if kind == "jmp":
                stack.append((op[1], caps))
            elif kind == "split":
                stack.append((op[2], caps))
                stack.append((op[1], caps))
            elif kind == "save":
                k = op[1]
                stack.append((pc + 1, caps[:k] + (i,) + caps[k + 1:]))
            elif kind == "assert":
                if _assert(op[1], text, i):
                    stack.append((pc + 1, caps))
            else:
                threads.append((pc, caps))
        return count

    current: list = []
    i = pos
    while True:
        if matched is None:
            steps += add(current, 0, (i, None) + empty[2:], i)
        if not current:
            if matched is not None or i >= n:
                break
            i += 1
            continue
        c = text[i] if i < n else ""
        following: list = []
        for pc, caps in current:
            steps += 1
            op = prog[pc]
            kind = op[0]
            if kind == "match":
                matched = caps[:1] + (i,) + caps[2:]
                break
            if not c:
                continue
            if (kind == "char" and op[1] == c) or kind == "any" or (kind == "set" and op[1].matches(c, fold)):
                steps += add(following, pc + 1, caps, i + 1)
        if steps > 4096:
            budget.match_steps(steps)
            steps = 0
        if i >= n:
            break
        current = following
        i += 1
    budget.match_steps(steps)
    return Match(text, matched) if matched is not None else None


# -- the expression a utility uses -----------------------------------------------------------------
class Regex:
    """A POSIX regular expression (basic, or extended with `extended`) from a Dockerfile."""

    def __init__(self, pattern: str, extended: bool = False, ignore_case: bool = False, *,
                 literal: bool = False, whole_line: bool = False, word: bool = False):
        limits.check_pattern(pattern, "a regular expression")
        parser = _Parser(pattern, extended)
        tree: Any = ("cat", [("lit", c) for c in pattern]) if literal else parser.parse()
        if word:
            tree = ("cat", [("assert", "b"), tree, ("assert", "b")])
        if whole_line:
            tree = ("cat", [("assert", "^"), tree, ("assert", "$")])
        self.pattern, self.tree, self.fold, self.groups = pattern, tree, ignore_case, parser.groups
        try:
            self.python = re.compile(_python(tree), re.I if ignore_case else 0)
        except re.error as e:
            raise ShellError(f"cannot use the regular expression '{pattern[:80]}' ({e})") from None
        self.varies = _varies(tree)
        self.shape = _Shape()
        _shape(tree, self.shape)
        self._program: list | None = None

    def _engine_is_re(self, n: int) -> bool:
        """Whether `re` may run on an input of n characters: its backtracking is estimated as
        size * n * n**(unbounded quantifiers) * (choices of bounded ones and alternations)."""
        if not self.varies:
            return True
        shape = self.shape
        if not shape.nested:
            cost = math.log(shape.size + 1) + (1 + shape.unbounded) * math.log(n + 2) + shape.fixed
            if cost <= math.log(RE_COST):
                return True
        if shape.nested and shape.backrefs and n <= 16:   # exponential, but in so few characters
            return True
        if shape.backrefs:
            raise ShellError(f"the regular expression '{self.pattern[:80]}' uses a back-reference in a way that "
                             f"could backtrack without end on a line of {n} characters (refused on the build host)")
        return False

    def _pike(self, text: str, pos: int) -> Match | None:
        if self._program is None:
            prog: list = []
            _compile(self.tree, prog, self.fold)
            prog.append(("match",))
            self._program = prog
        return _pike(self._program, self.groups, text, pos, self.fold)

    def search(self, text: str, pos: int = 0) -> Any:
        """The leftmost match at or after `pos` (a re.Match or a Match), or None."""
        if self._engine_is_re(len(text)):
            limits.budget().match_steps((len(text) - pos) // _RE_SPEEDUP + 1)
            return self.python.search(text, pos)
        return self._pike(text, pos)

    def sub(self, replace: Callable[[Any], str], text: str, count: int = 0) -> str:
        """Each match (the first `count`, 0: all) replaced by replace(match), as re.sub does."""
        if self._engine_is_re(len(text)):
            limits.budget().match_steps(len(text) // _RE_SPEEDUP + 1)
            return self.python.sub(replace, text, count)
        out, pos, done, last = [], 0, 0, -1
        while pos <= len(text) and (not count or done < count):
            m = self._pike(text, pos)
            if m is None:
                break
            s, e = m.span()
            if s == e and s == last:   # an empty match right after the previous match: move on
                if s >= len(text):
                    break
                m = self._pike(text, s + 1)
                if m is None:
                    break
                s, e = m.span()
            out.append(text[pos:s])
            out.append(replace(m))
            done += 1
            last = e
            if e == s:
                if s < len(text):
                    out.append(text[s])
                pos = s + 1
            else:
                pos = e
        out.append(text[pos:])
        return "".join(out)
