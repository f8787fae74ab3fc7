"""The build context: the files a COPY may read, minus what .dockerignore excludes.

A source never escapes the context: `..`, absolute paths and symlinks that resolve outside
it are refused with the Dockerfile line that asked for them. The context is treated as
hostile: only regular files, directories and symlinks are taken (a FIFO, socket or device is
refused before anything opens it), walks are iterative and bounded in path length, and
.dockerignore patterns match in time linear in the path (no backtracking).
"""
from __future__ import annotations

import fnmatch
import os
import posixpath
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from boxer_py.errors import BuildError, DockerfileError
from boxer_py.image import hostfs


def _pattern_regex(pattern: str) -> re.Pattern:
    """A .dockerignore pattern (Go filepath.Match plus `**`) as a regex over a relative path."""
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):
                i += 1
                out += "(?:.*/)?"
            else:
                out += ".*"
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out += re.escape(c)
            else:
                body = pattern[i + 1:end].replace("\\", "\\\\")
                out += "[" + ("^" + body[1:] if body.startswith("^") else body) + "]"
                i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out + "(?:/.*)?$")


MAX_IGNORE_FILE = 1 << 20  # bytes of .dockerignore
MAX_CONTEXT_PATH = 2048  # characters of a path inside the context that COPY takes


def _simple(pattern: str) -> bool:
    """Patterns a backtracking regex matches in linear time: no `**`, at most one `*` a segment."""
    return "**" not in pattern and all(seg.count("*") <= 1 for seg in pattern.split("/"))


class _CharClass(NamedTuple):
    """A `[...]` of a pattern: its (first, last) character ranges, and whether `^` negates it."""

    ranges: tuple[tuple[str, str], ...]
    negate: bool


class _Glob:
    """A .dockerignore pattern as an NFA simulated over the path, one character at a time: time
    is (pattern length x path length) whatever the pattern (`**/**/**/...` included)."""

    def __init__(self, pattern: str):
        # nodes: (kind, data); kinds: lit, any (not /), class, star (loop on not /), dstar (loop on
        # anything), group (start of `**/`: may be skipped whole, to the node after its `/`)
        nodes: list[tuple[str, object]] = []
        i = 0
        while i < len(pattern):
            c = pattern[i]
            if pattern.startswith("**/", i):
                nodes += [("group", None), ("dstar", None), ("lit", "/")]
                i += 3
                continue
            if pattern.startswith("**", i):
                nodes.append(("dstar", None))
                i += 2
                continue
            if c == "*":
                nodes.append(("star", None))
            elif c == "?":
                nodes.append(("any", None))
            elif c == "[" and pattern.find("]", i + 1) > i + 1:
                end = pattern.find("]", i + 1)
                body = pattern[i + 1:end]
                negate = body[:1] == "^"  # Go's filepath.Match: only ^ negates
                body = body[1:] if negate else body
                ranges: list[tuple[str, str]] = []
                k = 0
                while k < len(body):
                    lo = body[k + 1] if body[k] == "\\" and k + 1 < len(body) else body[k]
                    k += 2 if body[k] == "\\" and k + 1 < len(body) else 1
                    hi = lo
                    if k + 1 < len(body) and body[k] == "-":
                        hi = body[k + 2] if body[k + 1] == "\\" and k + 2 < len(body) else body[k + 1]
                        k += 3 if body[k + 1] == "\\" and k + 2 < len(body) else 2
                    ranges.append((lo, hi))
                nodes.append(("class", _CharClass(tuple(ranges), negate)))
                i = end
            elif c == "\\" and i + 1 < len(pattern):
                i += 1
                nodes.append(("lit", pattern[i]))
            else:
                nodes.append(("lit", c))
            i += 1
        self.nodes = nodes
        self.accept = len(nodes)
        self.closure = [self._closure(n) for n in range(len(nodes) + 1)]

    def _closure(self, start: int) -> frozenset[int]:
        seen, todo = set(), [start]
        while todo:
            n = todo.pop()
            if n in seen:
                continue
            seen.add(n)
            if n < len(self.nodes):
                kind = self.nodes[n][0]
                if kind in ("star", "dstar"):
                    todo.append(n + 1)
                elif kind == "group":
                    todo += [n + 1, n + 3]
        return frozenset(seen)

    def _step(self, n: int, ch: str) -> int | None:
        kind, data = self.nodes[n]
        if kind == "lit":
            return n + 1 if ch == data else None
        if kind == "any":
            return n + 1 if ch != "/" else None
        if isinstance(data, _CharClass):  # kind "class", the only kind whose data is one
            inside = any(lo <= ch <= hi for lo, hi in data.ranges)
            return n + 1 if ch != "/" and inside != data.negate else None
        if kind == "star":
            return n if ch != "/" else None
        if kind == "dstar":
            return n
        return None

    def match(self, path: str) -> bool:
        """The path, or one of its parent directories, matches (as in Docker)."""
        current = self.closure[0]
        for ch in path:
            if ch == "/" and self.accept in current:
                return True
            following: set[int] = set()
            for n in current:
                if n < self.accept:
                    to = self._step(n, ch)
                    if to is not None:
                        following |= self.closure[to]
            if not following:
                return False
            current = frozenset(following)
        return self.accept in current


@dataclass(frozen=True)
class _Rule:
    regex: re.Pattern | _Glob
    exclude: bool


class Context:
    def __init__(self, root: Path, dockerfile: str):
        self.root = root.resolve()
        self.dockerfile = dockerfile
        if not self.root.is_dir():
            raise BuildError(f"build context {root} is not a directory")
        self.rules = self._read_ignore()

    def _read_ignore(self) -> list[_Rule]:
        path = self.root / ".dockerignore"
        try:
            data = hostfs.read_file(path, MAX_IGNORE_FILE)
        except hostfs.Unreadable as e:
            if e.missing:
                return []
            raise BuildError(f"{path} {e}; .dockerignore must be a small regular file") from None
        rules = []
        for raw in data.decode("utf-8", errors="replace").splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            exclude = not line.startswith("!")
            line = posixpath.normpath(line.lstrip("!").strip()).lstrip("/")
            rules.append(_Rule(_pattern_regex(line) if _simple(line) else _Glob(line), exclude))
        return rules

    def ignored(self, rel: str) -> bool:
        """Docker's rule: the last matching pattern wins."""
        result = False
        for rule in self.rules:
            if rule.regex.match(rel):
                result = rule.exclude
        return result

    def sources(self, source: str, line: int, kind: str = "COPY") -> list[Path]:
        """Host paths a COPY source names (globs expanded), each checked to be inside the context."""
        fail = lambda why: _fail(self.dockerfile, line, f"{kind} {why}")  # noqa: E731
        if "://" in source:
            fail(f"{source}: fetching URLs is not supported (no network at build time); "
                 "download it on the host and COPY it")
        if source.startswith("/"):
            fail(f"{source}: absolute paths are outside the build context; name it relative to the context")
        rel = posixpath.normpath(source)
        if rel == ".." or rel.startswith("../"):
            fail(f"{source}: is outside the build context")
        if any(ch in rel for ch in "*?["):
            matches = self._glob(rel)
        else:
            matches = [rel] if os.path.lexists(self.root / rel) else []
        matches = [m for m in matches if m == "." or not self.ignored(m)]
        if not matches:
            fail(f"{source}: no such file or directory in the build context")
        out = []
        for m in matches:
            host = self.root / m
            real = host.resolve()
            if real != self.root and self.root not in real.parents:
                fail(f"{source}: is a symlink that points outside the build context")
            _check_kind(real, m, fail)
            out.append(host)
        return out

    def _glob(self, pattern: str) -> list[str]:
        parts = pattern.split("/")
        found = [""]
        for part in parts:
            nxt = []
            for base in found:
                d = self.root / base
                if not d.is_dir():
                    continue
                for name in sorted(os.listdir(d)):
                    if fnmatch.fnmatchcase(name, part):
                        nxt.append(f"{base}/{name}" if base else name)
            found = nxt
        return found

    def walk(self, top: Path, line: int = 0, kind: str = "COPY") -> list[tuple[Path, str]]:
        """(host path, path relative to `top`) for everything under a source directory, minus
        ignored; iterative, and a FIFO, socket or device (or a path too long to copy) is an error
        naming the Dockerfile line."""
        fail = lambda why: _fail(self.dockerfile, line, f"{kind} {why}")  # noqa: E731
        base = top.relative_to(self.root).as_posix()
        base = "" if base == "." else base + "/"
        out = []
        todo = [""]
        while todo:
            rel_dir = todo.pop()
            try:
                with os.scandir(top / rel_dir if rel_dir else top) as it:
                    entries = sorted((e.name, e.is_dir(follow_symlinks=False)) for e in it)
            except OSError as e:
                fail(f"{base}{rel_dir}: cannot read the directory ({e.strerror})")
            subdirs = []
            for name, is_dir in entries:
                rel = f"{rel_dir}/{name}" if rel_dir else name
                if len(base) + len(rel) > MAX_CONTEXT_PATH:
                    fail(f"{base}{rel[:80]}...: path longer than {MAX_CONTEXT_PATH} characters in the build context")
                host = top / rel
                if self.ignored(base + rel):
                    # Like Docker, an excluded directory is still searched when a `!` rule
                    # could bring back something inside it.
                    if is_dir and not all(rule.exclude for rule in self.rules):
                        subdirs.append(rel)
                    continue
                if not is_dir:
                    _check_kind(host, base + rel, fail, follow=False)
                out.append((host, rel))
                if is_dir:
                    subdirs.append(rel)
            todo.extend(reversed(subdirs))
        out.sort(key=lambda e: e[1].split("/"))
        return out


def _check_kind(host: Path, rel: str, fail, follow: bool = True) -> None:
    """Only regular files, directories and symlinks are copied: anything else would block (a
    FIFO), fail oddly (a socket) or never end (/dev/zero), so it is refused unopened."""
    try:
        mode = (os.stat if follow else os.lstat)(host).st_mode
    except OSError as e:
        fail(f"{rel}: cannot read it ({e.strerror})")
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
        what = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
        fail(f"{rel}: is {what}, not a regular file; only files, directories and symlinks can be copied")


def _fail(path: str, line: int, why: str):
    raise DockerfileError(why, path, line)
