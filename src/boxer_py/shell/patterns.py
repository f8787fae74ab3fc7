"""Shell patterns (case, globs, ${X#pat}, find -name) and the bracket expressions they share
with regular expressions, matched on the build host without backtracking.

A pattern from a Dockerfile is never turned into a regex: `*`, `?` and `[...]` become tokens
that an NFA simulation runs over the text, at most (pattern length) steps per character, each
step counted toward limits.MAX_MATCH_STEPS. The same pass finds the shortest or the longest
matching prefix, for ${X#pat} ${X##pat} (and, reversed, % and %%).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from boxer_py.errors import ShellError
from boxer_py.shell import limits

_PUNCT = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
_CLASSES: dict[str, Callable[[str], bool]] = {   # the C locale's classes (ASCII); \w as in `re`
    "alpha": lambda c: c.isascii() and c.isalpha(), "digit": lambda c: "0" <= c <= "9",
    "alnum": lambda c: c.isascii() and c.isalnum(), "upper": lambda c: "A" <= c <= "Z",
    "lower": lambda c: "a" <= c <= "z", "space": lambda c: c in " \t\n\r\f\v", "blank": lambda c: c in " \t",
    "punct": lambda c: c in _PUNCT, "xdigit": lambda c: c in "0123456789abcdefABCDEF",
    "cntrl": lambda c: c < " " or c == "\x7f", "print": lambda c: " " <= c <= "~", "graph": lambda c: "!" <= c <= "~",
    "word": lambda c: c.isalnum() or c == "_",
}
_RE_CLASSES = {"alpha": "a-zA-Z", "digit": "0-9", "alnum": "a-zA-Z0-9", "upper": "A-Z", "lower": "a-z",
               "space": r" \t\n\r\f\v", "blank": r" \t", "xdigit": "0-9a-fA-F", "cntrl": r"\x00-\x1f\x7f",
               "punct": re.escape(_PUNCT), "print": r"\x20-\x7e", "graph": r"\x21-\x7e", "word": r"\w"}


@dataclass(frozen=True)
class CharSet:
    negate: bool
    chars: frozenset[str]
    ranges: tuple[tuple[str, str], ...]
    classes: tuple[str, ...]

    def matches(self, c: str, fold: bool = False) -> bool:
        hit = self._has(c) or (fold and (self._has(c.lower()) or self._has(c.upper())))
        return hit != self.negate

    def _has(self, c: str) -> bool:
        return (c in self.chars or any(lo <= c <= hi for lo, hi in self.ranges)
                or any(_CLASSES[k](c) for k in self.classes))

    def python(self) -> str:
        """As a Python `re` set."""
        inner = "".join(re.escape(c) for c in sorted(self.chars))
        inner += "".join(re.escape(lo) + "-" + re.escape(hi) for lo, hi in self.ranges)
        inner += "".join(_RE_CLASSES[k] for k in self.classes)
        if not inner:
            return "(?s:.)" if self.negate else "(?!)"
        return "[" + ("^" if self.negate else "") + inner + "]"


def parse_bracket(text: str, i: int) -> tuple[CharSet, int] | None:
    """The bracket expression starting after the `[` at text[i-1]; None when it has no end."""
    negate = i < len(text) and text[i] in "^!"
    if negate:
        i += 1
    chars: set[str] = set()
    ranges: list[tuple[str, str]] = []
    classes: list[str] = []
    first = True
    while i < len(text):
        c = text[i]
        if c == "]" and not first:
            return CharSet(negate, frozenset(chars), tuple(ranges), tuple(classes)), i + 1
        first = False
        if c == "[" and text.startswith(("[:", "[=", "[."), i):
            close = text.find(text[i + 1] + "]", i + 2)
            if close < 0:
                return None
            name = text[i + 2:close]
            if text[i + 1] == ":":
                if name not in _CLASSES or name == "word":
                    raise ShellError(f"unknown character class [:{name}:]")
                classes.append(name)
            else:
                chars.update(name)   # [=a=] and [.a.]: the character itself
            i = close + 2
            continue
        if i + 2 < len(text) and text[i + 1] == "-" and text[i + 2] != "]":
            if text[i + 2] < c:
                raise ShellError(f"invalid range end in [{text[i:i + 3]}]")
            ranges.append((c, text[i + 2]))
            i += 3
            continue
        chars.add(c)
        i += 1
    return None


# -- shell patterns -------------------------------------------------------------------------------------
_SPECIAL = re.compile(r"[*?\[]")
# Tokens: ("star",) ("any",) ("char", c) ("set", CharSet)

class Glob:
    """A shell pattern: `*`, `?` and `[...]` where `active`, other characters literal; matched by
    an NFA simulation, never by backtracking."""

    def __init__(self, chunks: list[tuple[str, bool]], fold: bool = False):
        text = "".join(t for t, _ in chunks)
        self.literal: str | None = None
        if not any(active and _SPECIAL.search(t) for t, active in chunks):   # "$x") in case: a comparison
            self.tokens, self.fold, self.literal = [], fold, text.lower() if fold else text
            return
        limits.check_pattern(text, "a shell pattern")
        flags = [a for t, a in chunks for _ in t]
        tokens: list[tuple] = []
        i = 0
        while i < len(text):
            c, active = text[i], flags[i]
            if active and c == "*":
                if not tokens or tokens[-1][0] != "star":
                    tokens.append(("star",))
            elif active and c == "?":
                tokens.append(("any",))
            elif active and c == "[":
                found = _bracket_active(text, flags, i + 1)
                if found is None:
                    tokens.append(("char", "["))
                else:
                    tokens.append(("set", found[0]))
                    i = found[1]
                    continue
            else:
                tokens.append(("char", c))
            i += 1
        self.tokens, self.fold = tokens, fold

    @classmethod
    def from_text(cls, pattern: str, fold: bool = False) -> Glob:
        """A pattern written as text (find -name): a backslash makes the next character literal."""
        chunks, i = [], 0
        while i < len(pattern):
            if pattern[i] == "\\" and i + 1 < len(pattern):
                chunks.append((pattern[i + 1], False))
                i += 2
            else:
                chunks.append((pattern[i], True))
                i += 1
        return cls(chunks, fold)

    def _closure(self, states: set[int]) -> set[int]:
        tokens = self.tokens
        for s in sorted(states):
            k = s
            while k < len(tokens) and tokens[k][0] == "star":
                k += 1
                states.add(k)
        return states

    def _step(self, states: set[int], c: str) -> set[int]:
        tokens, fold = self.tokens, self.fold
        out: set[int] = set()
        for s in states:
            if s >= len(tokens):
                continue
            t = tokens[s]
            kind = t[0]
            if kind == "star":
                out.add(s)
            elif kind == "any" or (kind == "char" and (t[1] == c or (fold and t[1].lower() == c.lower()))) \
                    or (kind == "set" and t[1].matches(c, fold)):
                out.add(s + 1)
        return self._closure(out)

    def prefix(self, text: str, longest: bool) -> int | None:
        """The shortest (or longest) k for which text[:k] matches the whole pattern, or None."""
        if self.literal is not None:
            head = text[:len(self.literal)]
            return len(self.literal) if (head.lower() if self.fold else head) == self.literal else None
        budget = limits.budget()
        tokens = self.tokens
        final = len(tokens)
        rest_stars = final   # from here on every token is a star: all that follows matches
        while rest_stars and tokens[rest_stars - 1][0] == "star":
            rest_stars -= 1
        if not any(t[0] == "star" for t in tokens):   # a fixed length: one comparison
            n = len(tokens)
            if n > len(text):
                return None
            budget.match_steps(n + 1)
            states = {0}
            for c in text[:n]:
                states = self._step(states, c)
                if not states:
                    return None
            return n
        states = self._closure({0})
        found = 0 if final in states else None
        steps = 0
        for k, c in enumerate(text, 1):
            if found is not None and not longest:
                break
            if longest and rest_stars < final and any(s >= rest_stars for s in states):
                found = len(text)
                break
            states = self._step(states, c)
            steps += len(states) + 1
            if steps > 4096:
                budget.match_steps(steps)
                steps = 0
            if not states:
                break
            if final in states:
                found = k
        budget.match_steps(steps)
        return found

    def fullmatch(self, text: str) -> bool:
        return self.prefix(text, longest=True) == len(text)

    def reversed(self) -> Glob:
        """The same pattern read backwards (for suffixes: ${X%pat})."""
        g = Glob.__new__(Glob)
        g.tokens, g.fold = list(reversed(self.tokens)), self.fold
        g.literal = None if self.literal is None else self.literal[::-1]
        return g


def _bracket_active(text: str, flags: list[bool], i: int) -> tuple[CharSet, int] | None:
    """A bracket expression whose `]` is active (a quoted `]` does not close it)."""
    try:
        found = parse_bracket(text, i)
    except ShellError:
        return None
    if found is None or not flags[found[1] - 1]:
        return None
    return found

