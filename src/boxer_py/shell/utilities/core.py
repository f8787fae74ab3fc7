"""How the RUN shell calls its utilities: the Call they receive, option parsing, and the
rules every utility follows on the rootfs.

Each utility takes a Call and returns an exit status, printing coreutils-like messages on
failure. Every path is a guest path resolved with rootfs.resolve (Call.host); trees are
walked without following symlinks and each destination is resolved again, so a symlink
planted in the image (`ln -s / /escape`) is followed inside the rootfs, never on the host.
Unknown options raise ShellError: a build should stop rather than guess.
"""
from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from boxer_py.errors import BoxerError
from boxer_py.image.paths import program_candidates
from boxer_py.image.rootfs import resolve
from boxer_py.shell import limits
from boxer_py.shell.parse import ShellError


@dataclass
class Call:
    name: str
    args: list[str]
    root: Path
    cwd: str
    env: dict[str, str]
    stdin: bytes
    out: Callable[[bytes], None]
    err: Callable[[bytes], None]
    owners: dict[str, tuple[int, int]]
    run: Callable[[list[str]], int] = lambda argv: 127   # runs a command line (find -exec)

    def guest(self, path: str) -> str:
        return posixpath.join(self.cwd, path)

    def host(self, path: str, follow_last: bool = True) -> Path:
        """Raises Failure (a message for the log) instead of escaping the rootfs."""
        if not path:   # `rm -rf "$UNSET"` must not mean the working directory
            raise Failure("'': No such file or directory")
        try:
            return resolve(self.root, self.guest(path), follow_last)
        except BoxerError:
            raise Failure(f"{path}: Too many levels of symbolic links") from None

    def print(self, text: str) -> None:
        self.out(text.encode("utf-8", "surrogateescape"))

    def fail(self, message: str, status: int = 1) -> int:
        self.err(f"{self.name}: {message}\n".encode("utf-8", "surrogateescape"))
        return status


class Failure(Exception):
    """A runtime failure of one operand: printed, the utility carries on and returns 1."""


Utility = Callable[[Call], int]
Options = dict[str, str | bool]   # parsed options: a flag is True, a valued option its text


def run(utility: Utility, call: Call) -> int:
    """Run a utility; a failure outside any operand loop still becomes a message and status 1."""
    try:
        return utility(call)
    except Failure as e:
        return call.fail(str(e))
    except OSError as e:
        return call.fail(e.strerror or str(e))




def lookup_path(root: Path, cwd: str, path_var: str, name: str) -> str | None:
    """The guest path of an executable `name` on PATH inside the rootfs."""
    for guest in program_candidates(name, path_var, cwd):
        try:
            host = resolve(root, guest)
        except BoxerError:
            continue
        if host.is_file() and host.stat().st_mode & 0o111:
            return guest
    return None


def parse_options(call: Call, flags: str, valued: str = "", long: dict[str, str] | None = None,
             args: list[str] | None = None) -> tuple[Options, list[str]]:
    """GNU-style options (anywhere before `--`); `long` maps names to keys, a trailing `=`
    on the key meaning it takes a value. Unknown options are a ShellError."""
    long = long or {}
    opts: Options = {}
    operands: list[str] = []
    args = call.args if args is None else args
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            operands += args[i + 1:]
            break
        if a.startswith("--"):
            name, eq, value = a[2:].partition("=")
            if name not in long:
                raise ShellError(f"{call.name}: unsupported option '--{name}'")
            key = long[name]
            if key.endswith("="):
                if not eq:
                    i += 1
                    if i >= len(args):
                        raise ShellError(f"{call.name}: option '--{name}' needs a value")
                    value = args[i]
                opts[key[:-1]] = value
            else:
                opts[key] = True
        elif a.startswith("-") and len(a) > 1:
            for j, ch in enumerate(a[1:], 1):
                if ch in valued:
                    value = a[j + 1:]
                    if not value:
                        i += 1
                        if i >= len(args):
                            raise ShellError(f"{call.name}: option '-{ch}' needs a value")
                        value = args[i]
                    opts[ch] = value
                    break
                if ch not in flags:
                    raise ShellError(f"{call.name}: unsupported option '-{ch}'")
                opts[ch] = True
        else:
            operands.append(a)
        i += 1
    return opts, operands


def value(opts: Options, key: str) -> str | None:
    """The text of a valued option, None when it was not given."""
    found = opts.get(key)
    return found if isinstance(found, str) else None


FILE_MODE, DIR_MODE = 0o644, 0o755   # new files and directories, as under Docker's umask 022


def new_dir(host: Path, mode: int = DIR_MODE) -> None:
    """mkdir with a fixed mode: the image must not depend on the builder's umask."""
    host.mkdir()
    os.chmod(host, mode)


def new_file(host: Path, append: bool = False):
    """Open for writing; a file created here gets FILE_MODE whatever the builder's umask."""
    created = not host.exists()
    handle = open(host, "ab" if append else "wb")
    if created:
        os.fchmod(handle.fileno(), FILE_MODE)
    return handle


def lexists(host: Path) -> bool:
    return host.is_symlink() or host.exists()


def real_dir(host: Path) -> bool:
    """A directory, not a symlink to one (never stat through a link: it may name a host path)."""
    return not host.is_symlink() and host.is_dir()


def each_operand(call: Call, operands: list[str], action: Callable[[str], None]) -> int:
    status = 0
    for operand in operands:
        try:
            action(operand)
        except Failure as e:
            status = call.fail(str(e))
        except OSError as e:
            status = call.fail(f"{operand}: {e.strerror or e}")
    return status


def encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def leading(pattern: str, text: str) -> str:
    """The match of `pattern` at the start of `text`; "" when there is none."""
    m = re.match(pattern, text)
    return m.group() if m else ""


_ESCAPES = {"\\": "\\", "a": "\a", "b": "\b", "e": "\x1b", "f": "\f", "n": "\n", "r": "\r",
            "t": "\t", "v": "\v", '"': '"'}


def unescape(text: str, octal_needs_zero: bool) -> tuple[str, bool]:
    """Backslash escapes of echo -e / printf; returns (text, stop) where `\\c` means stop."""
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c != "\\" or i + 1 >= len(text):
            out.append(c)
            i += 1
            continue
        nxt = text[i + 1]
        if nxt == "c":
            return "".join(out), True
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif nxt == "x":
            m = re.match(r"[0-9a-fA-F]{1,2}", text[i + 2:])
            if m:
                out.append(chr(int(m.group(), 16)))
                i += 2 + m.end()
            else:
                out.append("\\x")
                i += 2
        elif nxt == "0" or (nxt in "1234567" and not octal_needs_zero):
            start = i + 2 if nxt == "0" and octal_needs_zero else i + 1
            digits = leading(r"[0-7]{0,3}", text[start:])
            out.append(chr(int(digits or "0", 8) & 0xFF))
            i = start + len(digits)
        else:
            out.append("\\" + nxt)
            i += 2
    return "".join(out), False


def read_inputs(call: Call, operands: list[str]) -> tuple[list[tuple[str, bytes]], int]:
    """(name, content) of each operand, `-` or none meaning stdin; failures printed. Files are
    read through limits.read_file (regular files only, size checked first), and all the inputs
    of one command together stay under limits.MAX_STREAM."""
    found, status, total = [], 0, 0
    for name in operands or ["-"]:
        if name == "-":
            found.append((name, call.stdin))
            continue
        try:
            host = call.host(name)
            if host.is_dir():
                status = call.fail(f"{name}: Is a directory")
                continue
            found.append((name, limits.read_file(host)))
            total += len(found[-1][1])
            limits.check_stream(total, f"{call.name}'s input")
        except Failure as e:
            status = call.fail(str(e))
        except OSError:
            status = call.fail(f"{name}: No such file or directory")
    return found, status
