"""The build context: the files a COPY may read, minus what .dockerignore excludes.

A source never escapes the context: `..`, absolute paths and symlinks that resolve outside
it are refused with the Dockerfile line that asked for them.
"""
from __future__ import annotations

import fnmatch
import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

from boxer_py.errors import BuildError, DockerfileError


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


@dataclass(frozen=True)
class _Rule:
    regex: re.Pattern
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
        if not path.is_file():
            return []
        rules = []
        for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            exclude = not line.startswith("!")
            line = posixpath.normpath(line.lstrip("!").strip()).lstrip("/")
            rules.append(_Rule(_pattern_regex(line), exclude))
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

    def walk(self, top: Path) -> list[tuple[Path, str]]:
        """(host path, path relative to `top`) for everything under a source directory, minus ignored."""
        out = []
        for dirpath, dirnames, filenames in os.walk(top):
            d = Path(dirpath)
            for name in sorted(dirnames + filenames):
                host = d / name
                if self.ignored(host.relative_to(self.root).as_posix()):
                    # Like Docker, an excluded directory is still searched when a `!` rule
                    # could bring back something inside it.
                    if name in dirnames and all(rule.exclude for rule in self.rules):
                        dirnames.remove(name)
                    continue
                out.append((host, host.relative_to(top).as_posix()))
        return out


def _fail(path: str, line: int, why: str):
    raise DockerfileError(why, path, line)
