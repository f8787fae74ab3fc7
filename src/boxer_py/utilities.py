"""The file and text utilities of the RUN shell (cp, rm, chmod, sed...), acting on a rootfs.

Each utility takes a Call and returns an exit status, printing coreutils-like messages on
failure. Every path is a guest path resolved with rootfs.resolve; trees are walked without
following symlinks, and each destination is resolved again, so a symlink planted in the
image (`ln -s / /escape`) is followed inside the rootfs, never on the host.
Unknown options raise ShellError: a build should stop rather than guess.
"""
from __future__ import annotations

import fnmatch
import io
import os
import posixpath
import re
import shlex
import shutil
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import users as accounts
from .errors import BoxerError
from .rootfs import extract_tar, resolve, within
from .shellparse import ShellError


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
        """Raises _Failure (a message for the log) instead of escaping the rootfs."""
        try:
            return resolve(self.root, self.guest(path), follow_last)
        except BoxerError:
            raise _Failure(f"{path}: Too many levels of symbolic links") from None

    def print(self, text: str) -> None:
        self.out(text.encode("utf-8", "surrogateescape"))

    def fail(self, message: str, status: int = 1) -> int:
        self.err(f"{self.name}: {message}\n".encode("utf-8", "surrogateescape"))
        return status


class _Failure(Exception):
    """A runtime failure of one operand: printed, the utility carries on and returns 1."""


Utility = Callable[[Call], int]
_STANDARD_BIN = {"/bin", "/usr/bin", "/usr/local/bin", "/sbin", "/usr/sbin", "/usr/local/sbin"}


def run(utility: Utility, call: Call) -> int:
    """Run a utility; a failure outside any operand loop still becomes a message and status 1."""
    try:
        return utility(call)
    except _Failure as e:
        return call.fail(str(e))
    except OSError as e:
        return call.fail(e.strerror or str(e))


def find(name: str) -> Utility | None:
    """The utility for a command name; `/bin/cp` counts as `cp`."""
    if "/" in name:
        directory, base = posixpath.split(name)
        return UTILITIES.get(base) if directory in _STANDARD_BIN else None
    return UTILITIES.get(name)


def lookup_path(root: Path, cwd: str, path_var: str, name: str) -> str | None:
    """The guest path of an executable `name` on PATH inside the rootfs."""
    candidates = [posixpath.join(cwd, name)] if "/" in name else [
        posixpath.join(d or ".", name) for d in path_var.split(":")]
    for guest in candidates:
        try:
            host = resolve(root, guest)
        except BoxerError:
            continue
        if host.is_file() and host.stat().st_mode & 0o111:
            return guest if guest.startswith("/") else posixpath.join(cwd, guest)
    return None


def _options(call: Call, flags: str, valued: str = "", long: dict[str, str] | None = None,
             args: list[str] | None = None) -> tuple[dict[str, str | bool], list[str]]:
    """GNU-style options (anywhere before `--`); `long` maps names to keys, a trailing `=`
    on the key meaning it takes a value. Unknown options are a ShellError."""
    long = long or {}
    opts: dict[str, str | bool] = {}
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


FILE_MODE, DIR_MODE = 0o644, 0o755   # new files and directories, as under Docker's umask 022


def _new_dir(host: Path, mode: int = DIR_MODE) -> None:
    """mkdir with a fixed mode: the image must not depend on the builder's umask."""
    host.mkdir()
    os.chmod(host, mode)


def _new_file(host: Path, append: bool = False):
    """Open for writing; a file created here gets FILE_MODE whatever the builder's umask."""
    created = not host.exists()
    handle = open(host, "ab" if append else "wb")
    if created:
        os.fchmod(handle.fileno(), FILE_MODE)
    return handle


def _lexists(host: Path) -> bool:
    return host.is_symlink() or host.exists()


def _real_dir(host: Path) -> bool:
    """A directory, not a symlink to one (never stat through a link: it may name a host path)."""
    return not host.is_symlink() and host.is_dir()


def _each(call: Call, operands: list[str], action: Callable[[str], None]) -> int:
    status = 0
    for operand in operands:
        try:
            action(operand)
        except _Failure as e:
            status = call.fail(str(e))
        except OSError as e:
            status = call.fail(f"{operand}: {e.strerror or e}")
    return status


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


# -- output and text -------------------------------------------------------------------------
_ESCAPES = {"\\": "\\", "a": "\a", "b": "\b", "e": "\x1b", "f": "\f", "n": "\n", "r": "\r",
            "t": "\t", "v": "\v", '"': '"'}


def _unescape(text: str, octal_needs_zero: bool) -> tuple[str, bool]:
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
            m = re.match(r"[0-7]{0,3}", text[start:])
            out.append(chr(int(m.group() or "0", 8) & 0xFF))
            i = start + m.end()
        else:
            out.append("\\" + nxt)
            i += 2
    return "".join(out), False


def echo(call: Call) -> int:
    """dash's echo (Debian's /bin/sh) interprets backslash escapes; -n, -e and -E as in bash."""
    args, newline, escapes = list(call.args), True, True
    while args and re.fullmatch(r"-[neE]+", args[0]):
        for ch in args.pop(0)[1:]:
            newline = newline and ch != "n"
            escapes = True if ch == "e" else (False if ch == "E" else escapes)
    text = " ".join(args)
    if escapes:
        text, stop = _unescape(text, octal_needs_zero=True)
        newline = newline and not stop
    call.print(text + ("\n" if newline else ""))
    return 0


_FORMAT = re.compile(r"%([-+ #0]*)(\d+|\*)?(?:\.(\d*|\*))?([sdiouxXcbfeEgG%])")


def printf(call: Call) -> int:
    if not call.args:
        return call.fail("usage: printf format [arguments]", 2)
    fmt, args = call.args[0], list(call.args[1:])
    status, out = 0, []
    while True:
        consumed = False
        pos = 0
        for m in _FORMAT.finditer(fmt):
            text, _ = _unescape(fmt[pos:m.start()], octal_needs_zero=False)
            out.append(text)
            pos = m.end()
            flags, width, precision, conv = m.groups()
            if conv == "%":
                out.append("%")
                continue
            if width == "*":
                width = args.pop(0) if args else "0"
                consumed = True
            if precision == "*":
                precision = args.pop(0) if args else "0"
                consumed = True
            arg = args.pop(0) if args else None
            consumed = consumed or arg is not None
            spec = "%" + flags + (width or "") + ("." + precision if precision is not None else "")
            if conv in "sb":
                value = arg or ""
                if conv == "b":
                    value, stop = _unescape(value, octal_needs_zero=True)
                    if stop:
                        out.append((spec + "s") % value)
                        call.print("".join(out))
                        return status
                out.append((spec + "s") % value)
            elif conv == "c":
                out.append((spec + "s") % (arg or "")[:1])
            elif conv in "eEfgG":
                try:
                    out.append((spec + conv) % float(arg or 0))
                except ValueError:
                    status = call.fail(f"{arg}: expected numeric value")
                    out.append((spec + conv) % 0.0)
            else:
                number = _printf_int(arg or "0")
                if number is None:
                    status = call.fail(f"{arg}: expected numeric value")
                    number = 0
                out.append((spec + ("d" if conv in "iu" else conv)) % number)
        text, stop = _unescape(fmt[pos:], octal_needs_zero=False)
        out.append(text)
        if stop or not args or not consumed:
            break
    call.print("".join(out))
    return status


def _printf_int(text: str) -> int | None:
    if text[:1] in ("'", '"'):
        return ord(text[1]) if len(text) > 1 else 0
    try:
        return int(text, 0) if not re.fullmatch(r"-?0[0-7]+", text) else int(text, 8)
    except ValueError:
        return None


def _read_inputs(call: Call, operands: list[str]) -> tuple[list[tuple[str, bytes]], int]:
    """(name, content) of each operand, `-` or none meaning stdin; failures printed."""
    found, status = [], 0
    for name in operands or ["-"]:
        if name == "-":
            found.append((name, call.stdin))
            continue
        try:
            host = call.host(name)
            if host.is_dir():
                status = call.fail(f"{name}: Is a directory")
                continue
            found.append((name, host.read_bytes()))
        except _Failure as e:
            status = call.fail(str(e))
        except OSError:
            status = call.fail(f"{name}: No such file or directory")
    return found, status


def cat(call: Call) -> int:
    _, operands = _options(call, "")
    found, status = _read_inputs(call, operands)
    for _, data in found:
        call.out(data)
    return status


def tee(call: Call) -> int:
    opts, operands = _options(call, "a", long={"append": "a"})
    call.out(call.stdin)
    status = 0
    for name in operands:
        try:
            host = call.host(name)
            with _new_file(host, append=bool(opts.get("a"))) as f:
                f.write(call.stdin)
        except _Failure as e:
            status = call.fail(str(e))
        except OSError:
            status = call.fail(f"{name}: No such file or directory")
    return status


def _head_tail(call: Call) -> int:
    args = []
    for a in call.args:
        if re.fullmatch(r"-\d+", a):
            args += ["-n", a[1:]]
        else:
            args.append(a)
    opts, operands = _options(call, "q", "n", {"lines": "n="}, args=args)
    count = str(opts.get("n", "10"))
    from_start = count.startswith("+")
    if not count.lstrip("+-").isdigit():
        return call.fail(f"invalid number of lines: '{count}'")
    n = int(count.lstrip("+-"))
    found, status = _read_inputs(call, operands)
    for k, (name, data) in enumerate(found):
        if len(found) > 1 and not opts.get("q"):
            call.print(("\n" if k else "") + f"==> {name} <==\n")
        lines = data.splitlines(keepends=True)
        if call.name == "head":
            call.out(b"".join(lines[:n]))
        else:
            call.out(b"".join(lines[max(n - 1, 0):] if from_start else (lines[-n:] if n else [])))
    return status


def sleep(call: Call) -> int:
    if not call.args or not all(re.fullmatch(r"\d+(\.\d+)?[smhd]?", a) for a in call.args):
        return call.fail(f"invalid time interval '{' '.join(call.args)}'")
    return 0


def pwd(call: Call) -> int:
    _options(call, "LP")
    call.print(call.cwd + "\n")
    return 0


def basename(call: Call) -> int:
    _, operands = _options(call, "")
    if not operands:
        return call.fail("missing operand")
    name = operands[0].rstrip("/") or "/"
    name = posixpath.basename(name) or name
    if len(operands) > 1 and name != operands[1] and name.endswith(operands[1]):
        name = name[: -len(operands[1])]
    call.print(name + "\n")
    return 0


def dirname(call: Call) -> int:
    _, operands = _options(call, "")
    if not operands:
        return call.fail("missing operand")
    for p in operands:
        stripped = p.rstrip("/") or "/"
        call.print((posixpath.dirname(stripped).rstrip("/") or ("/" if stripped.startswith("/") else ".")) + "\n")
    return 0


def which(call: Call) -> int:
    opts, operands = _options(call, "a")
    status = 0
    for name in operands:
        found = lookup_path(call.root, call.cwd, call.env.get("PATH", ""), name)
        if found is None:
            status = 1
        else:
            call.print(found + "\n")
    return status


# -- test / [ ----------------------------------------------------------------------------------
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
    except _Failure:
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
            except _Failure:
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


# -- files and directories -------------------------------------------------------------------
def _parse_mode(call: Call, spec: str, current: int, is_dir: bool) -> int:
    if re.fullmatch(r"[0-7]{1,4}", spec):
        return int(spec, 8)
    mode = current
    for clause in spec.split(","):
        m = re.fullmatch(r"([ugoa]*)((?:[-+=](?:[rwxXst]*|[ugo]))+)", clause)
        if not m:
            raise ShellError(f"{call.name}: invalid mode '{spec}'")
        who = m.group(1) or ""
        mask = 0
        for w in who or "a":
            mask |= {"u": 0o4700, "g": 0o2070, "o": 0o1007, "a": 0o7777}[w]
        umask = 0o022 if not who else 0
        for op, perms in re.findall(r"([-+=])([rwxXst]*|[ugo])", m.group(2)):
            bits = 0
            if perms and perms in "ugo" and len(perms) == 1:
                shift = {"u": 6, "g": 3, "o": 0}[perms]
                part = (mode >> shift) & 7
                bits = part << 6 | part << 3 | part
            else:
                for p in perms:
                    if p == "r":
                        bits |= 0o444
                    elif p == "w":
                        bits |= 0o222
                    elif p == "x" or (p == "X" and (is_dir or mode & 0o111)):
                        bits |= 0o111
                    elif p == "s":
                        bits |= 0o6000
                    elif p == "t":
                        bits |= 0o1000
            bits &= mask & ~umask
            if op == "+":
                mode |= bits
            elif op == "-":
                mode &= ~bits
            else:
                mode = (mode & ~(mask & 0o7777 & ~(0o7000 if is_dir else 0))) | bits
    return mode & 0o7777


def mkdir(call: Call) -> int:
    opts, operands = _options(call, "pv", "m", {"parents": "p", "mode": "m=", "verbose": "v"})
    if not operands:
        return call.fail("missing operand")
    mode = _parse_mode(call, str(opts["m"]), 0o777, True) if "m" in opts else None

    def make(path: str) -> None:
        parts = [p for p in call.guest(path).split("/") if p]
        if opts.get("p"):
            for k in range(1, len(parts) + 1):
                host = call.host("/" + "/".join(parts[:k]))
                if host.is_dir():
                    continue
                if _lexists(host):
                    raise _Failure(f"cannot create directory '{path}': Not a directory")
                try:
                    _new_dir(host)
                except OSError:
                    raise _Failure(f"cannot create directory '{path}': No such file or directory") from None
        else:
            host = call.host(path, follow_last=False)
            if _lexists(host):
                raise _Failure(f"cannot create directory '{path}': File exists")
            if not host.parent.is_dir():
                raise _Failure(f"cannot create directory '{path}': No such file or directory")
            _new_dir(host)
        if mode is not None:
            os.chmod(call.host(path), mode)

    return _each(call, operands, make)


def rmdir(call: Call) -> int:
    opts, operands = _options(call, "p", long={"parents": "p"})

    def remove(path: str) -> None:
        targets = [path]
        if opts.get("p"):
            p = path.rstrip("/")
            while "/" in p.strip("/"):
                p = posixpath.dirname(p)
                targets.append(p)
        for t in targets:
            host = call.host(t, follow_last=False)
            if host == call.root:
                raise _Failure(f"failed to remove '{t}': Device or resource busy")
            if host.is_symlink() or not host.is_dir():
                raise _Failure(f"failed to remove '{t}': Not a directory" if _lexists(host)
                               else f"failed to remove '{t}': No such file or directory")
            try:
                host.rmdir()
            except OSError:
                raise _Failure(f"failed to remove '{t}': Directory not empty") from None

    return _each(call, operands, remove)


def _remove(host: Path) -> None:
    if host.is_symlink() or not host.is_dir():
        host.unlink()
    else:
        shutil.rmtree(host)


def rm(call: Call) -> int:
    opts, operands = _options(call, "rRfdvi", long={"recursive": "r", "force": "f", "dir": "d",
                                                     "verbose": "v", "no-preserve-root": "no-preserve-root"})
    recursive = opts.get("r") or opts.get("R")
    if not operands and not opts.get("f"):
        return call.fail("missing operand")

    def remove(path: str) -> None:
        if posixpath.basename(path.rstrip("/")) in (".", ".."):
            raise _Failure(f"refusing to remove '.' or '..' directory: skipping '{path}'")
        host = call.host(path, follow_last=False)
        if host == call.root:
            if not recursive:
                raise _Failure(f"cannot remove '{path}': Is a directory")
            if not opts.get("no-preserve-root"):
                raise _Failure(f"it is dangerous to operate recursively on '{path}' (same as '/')\n"
                               f"{call.name}: use --no-preserve-root to override this failsafe")
            for child in sorted(host.iterdir()):
                _remove(child)
            return
        if not _lexists(host):
            if not opts.get("f"):
                raise _Failure(f"cannot remove '{path}': No such file or directory")
            return
        if _real_dir(host):
            if not recursive:
                if opts.get("d"):
                    host.rmdir()
                    return
                raise _Failure(f"cannot remove '{path}': Is a directory")
            shutil.rmtree(host)
        else:
            host.unlink()

    return _each(call, operands, remove)


def touch(call: Call) -> int:
    opts, operands = _options(call, "camh", "dtr", {"no-create": "c", "date": "d=", "reference": "r="})
    if not operands:
        return call.fail("missing file operand")

    def touch_one(path: str) -> None:
        host = call.host(path)
        if host.exists():
            os.utime(host)
        elif not opts.get("c"):
            if not host.parent.is_dir():
                raise _Failure(f"cannot touch '{path}': No such file or directory")
            _new_file(host).close()

    return _each(call, operands, touch_one)


def _target(call: Call, dest: str, dest_is_dir: bool, source: str) -> tuple[str, str]:
    """Where `source` lands, as a guest path and as the user wrote it: inside `dest` when it
    is a directory, like coreutils."""
    if not dest_is_dir:
        return call.guest(dest), dest
    name = posixpath.basename(source.rstrip("/")) or "/"
    base = within(call.root, call.host(dest))
    if name in (".", "/"):
        return base, dest
    return posixpath.join(base, name), posixpath.join(dest, name)


def _inside(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def cp(call: Call) -> int:
    opts, operands = _options(call, "rRapfdPLnvTu", long={
        "recursive": "r", "archive": "a", "force": "f", "no-dereference": "P", "dereference": "L",
        "no-clobber": "n", "verbose": "v", "no-target-directory": "T", "preserve": "preserve=", "update": "u"})
    recursive = bool(opts.get("r") or opts.get("R") or opts.get("a"))
    no_deref = bool(opts.get("P") or opts.get("d") or opts.get("a") or (recursive and not opts.get("L")))
    preserve = bool(opts.get("p") or opts.get("a") or "preserve" in opts)
    if len(operands) < 2:
        return call.fail("missing destination file operand" if operands else "missing file operand")
    *sources, dest = operands
    dest_host = call.host(dest)
    dest_is_dir = dest_host.is_dir() and not opts.get("T")
    if len(sources) > 1 and not dest_is_dir:
        return call.fail(f"target '{dest}' is not a directory")

    def copy(source: str) -> None:
        src = call.host(source, follow_last=not no_deref)
        if not _lexists(src):
            raise _Failure(f"cannot stat '{source}': No such file or directory")
        target, shown = _target(call, dest, dest_is_dir, source)
        if _real_dir(src):
            if not recursive:
                raise _Failure(f"-r not specified; omitting directory '{source}'")
            target_host = call.host(target)
            if _inside(target_host, src):
                raise _Failure(f"cannot copy a directory, '{source}', into itself, '{shown}'")
            _copy_dir(call, src, target, shown, preserve, bool(opts.get("n")))
        else:
            _copy_entry(call, src, target, shown, preserve, bool(opts.get("n")))

    return _each(call, sources, copy)


def _copy_entry(call: Call, src: Path, target: str, shown: str, preserve: bool, no_clobber: bool) -> None:
    if shown.endswith("/"):
        raise _Failure(f"cannot create regular file '{shown}': Not a directory")
    if src.is_symlink():
        link = call.host(target, follow_last=False)
        if _lexists(link):
            if no_clobber:
                return
            if _real_dir(link):
                raise _Failure(f"cannot overwrite directory '{shown}' with non-directory")
            link.unlink()
        os.symlink(os.readlink(src), link)
        return
    if not src.is_file():
        raise _Failure(f"cannot copy '{within(call.root, src)}': not a regular file or directory")
    host = call.host(target)
    if host.is_dir():
        raise _Failure(f"cannot overwrite directory '{shown}' with non-directory")
    if not host.parent.is_dir():
        raise _Failure(f"cannot create regular file '{shown}': No such file or directory")
    if host.exists() and no_clobber:
        return
    if host.exists() and os.path.samefile(host, src):
        raise _Failure(f"'{within(call.root, src)}' and '{shown}' are the same file")
    shutil.copyfile(src, host, follow_symlinks=False)
    (shutil.copystat if preserve else shutil.copymode)(src, host)


def _copy_dir(call: Call, src: Path, target: str, shown: str, preserve: bool, no_clobber: bool) -> None:
    host = call.host(target)
    if not host.exists():
        if not host.parent.is_dir():
            raise _Failure(f"cannot create directory '{shown}': No such file or directory")
        _new_dir(host)
    elif not host.is_dir():
        raise _Failure(f"cannot overwrite non-directory '{shown}' with directory")
    base = within(call.root, host)
    with os.scandir(src) as entries:
        children = sorted(entries, key=lambda e: e.name)
    for entry in children:
        child_src, child_target = Path(entry.path), posixpath.join(base, entry.name)
        child_shown = posixpath.join(shown, entry.name)
        if entry.is_dir(follow_symlinks=False):
            _copy_dir(call, child_src, child_target, child_shown, preserve, no_clobber)
        else:
            _copy_entry(call, child_src, child_target, child_shown, preserve, no_clobber)
    (shutil.copystat if preserve else shutil.copymode)(src, host)


def mv(call: Call) -> int:
    opts, operands = _options(call, "fnvTi", long={"force": "f", "no-clobber": "n", "verbose": "v",
                                                   "no-target-directory": "T"})
    if len(operands) < 2:
        return call.fail("missing destination file operand" if operands else "missing file operand")
    *sources, dest = operands
    dest_is_dir = call.host(dest).is_dir() and not opts.get("T")
    if len(sources) > 1 and not dest_is_dir:
        return call.fail(f"target '{dest}' is not a directory")

    def move(source: str) -> None:
        src = call.host(source, follow_last=False)
        if not _lexists(src):
            raise _Failure(f"cannot stat '{source}': No such file or directory")
        if src == call.root:
            raise _Failure(f"cannot move '{source}': Device or resource busy")
        target, shown = _target(call, dest, dest_is_dir, source)
        host = call.host(target, follow_last=False)
        if host == src:
            raise _Failure(f"'{source}' and '{shown}' are the same file")
        if _real_dir(src) and _inside(host, src):
            raise _Failure(f"cannot move '{source}' to a subdirectory of itself, '{shown}'")
        if shown.endswith("/") and not _real_dir(src) and not dest_is_dir:
            raise _Failure(f"cannot move '{source}' to '{shown}': Not a directory")
        if _lexists(host):
            if opts.get("n"):
                return
            if _real_dir(host):
                if not _real_dir(src):
                    raise _Failure(f"cannot overwrite directory '{shown}' with non-directory")
                if any(host.iterdir()):
                    raise _Failure(f"cannot move '{source}' to '{shown}': Directory not empty")
                host.rmdir()
        elif not host.parent.is_dir():
            raise _Failure(f"cannot move '{source}' to '{shown}': No such file or directory")
        os.replace(src, host)
        _move_owners(call, within(call.root, src), within(call.root, host))

    return _each(call, sources, move)


def _move_owners(call: Call, old: str, new: str) -> None:
    """Ownership recorded by chown follows a moved file or tree."""
    for key in [k for k in call.owners if k == old or k.startswith(old.rstrip("/") + "/")]:
        call.owners[new + key[len(old):]] = call.owners.pop(key)


def ln(call: Call) -> int:
    opts, operands = _options(call, "sfnTvr", long={"symbolic": "s", "force": "f", "no-dereference": "n",
                                                    "verbose": "v", "no-target-directory": "T"})
    if not operands:
        return call.fail("missing file operand")
    if len(operands) == 1:
        operands.append(".")
    *sources, dest = operands
    dest_is_dir = not opts.get("T") and _real_dir(call.host(dest, follow_last=not opts.get("n")))
    if len(sources) > 1 and not dest_is_dir:
        return call.fail(f"target '{dest}' is not a directory")

    def link(source: str) -> None:
        target, shown = _target(call, dest, dest_is_dir, source)
        host = call.host(target, follow_last=False)
        if _lexists(host):
            if not opts.get("f"):
                kind = "symbolic link" if opts.get("s") else "hard link"
                raise _Failure(f"failed to create {kind} '{shown}': File exists")
            if _real_dir(host):
                raise _Failure(f"'{shown}': cannot overwrite directory")
            host.unlink()
        if not host.parent.is_dir():
            raise _Failure(f"failed to create link '{shown}': No such file or directory")
        if opts.get("s"):
            os.symlink(source, host)
            return
        src = call.host(source)
        if not src.is_file():
            raise _Failure(f"failed to access '{source}': No such file or directory"
                           if not src.exists() else f"'{source}': hard link not allowed for directory")
        os.link(src, host)

    return _each(call, sources, link)


def _walk(host: Path) -> list[Path]:
    """`host` and, for a real directory, everything under it; symlinks are listed, not entered."""
    found = [host]
    if _real_dir(host):
        for dirpath, dirnames, filenames in os.walk(host):
            found.extend(Path(dirpath) / n for n in sorted(dirnames + filenames))
    return found


def chmod(call: Call) -> int:
    options, rest = [], []
    for a in call.args:
        if not rest and re.fullmatch(r"-[Rfcv]+|--recursive|--silent|--quiet|--changes|--verbose", a):
            options.append(a)
        else:
            rest.append(a)
    opts, _ = _options(call, "Rfcv", long={"recursive": "R", "silent": "f", "quiet": "f", "changes": "c",
                                           "verbose": "v"}, args=options)
    if len(rest) < 2:
        return call.fail("missing operand")
    spec, operands = rest[0], rest[1:]
    _parse_mode(call, spec, 0, False)   # reject a bad mode before touching anything

    def change(path: str) -> None:
        host = call.host(path)
        if not host.exists():
            raise _Failure(f"cannot access '{path}': No such file or directory")
        for h in _walk(host) if opts.get("R") else [host]:
            if h.is_symlink():
                continue
            current = stat.S_IMODE(h.stat().st_mode)
            os.chmod(h, _parse_mode(call, spec, current, h.is_dir()))

    return _each(call, operands, change)


def chown(call: Call) -> int:
    opts, operands = _options(call, "RhfvHLP", long={"recursive": "R", "no-dereference": "h",
                                                     "silent": "f", "quiet": "f", "verbose": "v"})
    if len(operands) < 2:
        return call.fail("missing operand")
    spec, operands = operands[0], operands[1:]
    user, colon, group = spec.partition(":")
    uid = gid = None
    if user:
        uid = accounts.user_id(call.root, user)
        if uid is None:
            return call.fail(f"invalid user: '{spec}'")
        if colon and not group:
            found = accounts.user(call.root, user)
            gid = found.gid if found else uid
    if group:
        gid = accounts.group_id(call.root, group)
        if gid is None:
            return call.fail(f"invalid group: '{spec}'")

    def change(path: str) -> None:
        host = call.host(path, follow_last=bool(opts.get("h")) is False)
        if not _lexists(host):
            raise _Failure(f"cannot access '{path}': No such file or directory")
        for h in _walk(host) if opts.get("R") else [host]:
            key = within(call.root, h)
            old_uid, old_gid = call.owners.get(key, (0, 0))
            call.owners[key] = (old_uid if uid is None else uid, old_gid if gid is None else gid)

    return _each(call, operands, change)


def chgrp(call: Call) -> int:
    if len(call.args) >= 2:
        flags = [a for a in call.args if a.startswith("-")]
        operands = [a for a in call.args if not a.startswith("-")]
        if operands:
            call.args = flags + [":" + operands[0]] + operands[1:]
    return chown(call)


def ls(call: Call) -> int:
    opts, operands = _options(call, "aA1ldF", long={"all": "a", "almost-all": "A"})
    status = 0
    files, dirs = [], []
    for name in operands or ["."]:
        try:
            link = call.host(name, follow_last=False)
            host = link if opts.get("l") or opts.get("d") else call.host(name)
        except _Failure as e:
            status = call.fail(str(e), 2)
            continue
        if not _lexists(link):
            status = call.fail(f"cannot access '{name}': No such file or directory", 2)
        elif _real_dir(host) and not opts.get("d"):
            dirs.append((name, host))
        else:
            files.append((name, link))
    lines = [_ls_line(call, n, h, opts) for n, h in files]
    for k, (name, host) in enumerate(dirs):
        if len(operands) > 1:
            lines.append(("\n" if lines or k else "") + f"{name}:")
        names = sorted(os.listdir(host))
        if opts.get("a"):
            names = [".", ".."] + names
        elif not opts.get("A"):
            names = [n for n in names if not n.startswith(".")]
        lines.extend(_ls_line(call, n, host / n if n not in (".", "..") else host, opts) for n in names)
    if lines:
        call.print("\n".join(lines) + "\n")
    return status


def _ls_line(call: Call, name: str, host: Path, opts: dict) -> str:
    if not opts.get("l"):
        return name
    st = host.lstat()
    uid, gid = call.owners.get(within(call.root, host), (0, 0))
    text = f"{stat.filemode(st.st_mode)} 1 {uid} {gid} {st.st_size:>8} {name}"
    return text + (f" -> {os.readlink(host)}" if host.is_symlink() else "")


# -- sed (s/// and d only) ------------------------------------------------------------------------
def sed(call: Call) -> int:
    scripts, operands, in_place, extended, quiet = [], [], False, False, False
    args = list(call.args)
    while args:
        a = args.pop(0)
        if a == "--":
            operands += args
            break
        if a.startswith("-i") or a.startswith("--in-place"):
            in_place = True
        elif a in ("-e", "--expression"):
            if not args:
                raise ShellError("sed: option '-e' needs a value")
            scripts.append(args.pop(0))
        elif a.startswith("--expression="):
            scripts.append(a.partition("=")[2])
        elif a in ("-E", "-r", "--regexp-extended"):
            extended = True
        elif a in ("-n", "--quiet", "--silent"):
            quiet = True
        elif re.fullmatch(r"-[Ernis]+", a) and "i" not in a[2:]:
            extended = extended or "E" in a or "r" in a
            quiet = quiet or "n" in a
            in_place = in_place or "i" in a
        elif a.startswith("-") and a != "-":
            raise ShellError(f"sed: unsupported option '{a}'")
        else:
            operands.append(a)
    if not scripts:
        if not operands:
            return call.fail("no script given", 1)
        scripts.append(operands.pop(0))
    commands = [c for s in scripts for c in _sed_parse(s, extended)]
    if in_place:
        if not operands:
            return call.fail("no input files")
        status = 0
        for name in operands:
            try:
                host = call.host(name)
                data = host.read_bytes()
            except (_Failure, OSError):
                status = call.fail(f"can't read {name}: No such file or directory", 2)
                continue
            host.write_bytes(_sed_apply(commands, data, quiet))
        return status
    found, status = _read_inputs(call, operands)
    call.out(_sed_apply(commands, b"".join(d for _, d in found), quiet))
    return status


@dataclass
class _SedCommand:
    address: re.Pattern | int | str | None   # a regex, a line number, '$' or every line
    verb: str                                # 's', 'd' or 'p'
    pattern: re.Pattern | None = None
    replacement: str = ""
    count: int = 1                           # 0 = every match (the g flag)
    print_: bool = False


def _sed_split(text: str, i: int, delim: str) -> tuple[str, int]:
    out = []
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            out.append(text[i + 1] if text[i + 1] == delim else text[i:i + 2])
            i += 2
            continue
        if c == delim:
            return "".join(out), i + 1
        out.append(c)
        i += 1
    raise ShellError(f"sed: unterminated expression in '{text}'")


def _sed_regex(pattern: str, extended: bool, flags: int = 0) -> re.Pattern:
    if not extended:
        out, i = [], 0
        while i < len(pattern):
            c = pattern[i]
            if c == "\\" and i + 1 < len(pattern):
                nxt = pattern[i + 1]
                out.append(nxt if nxt in "(){}+?|" else ("\n" if nxt == "n" else "\\" + nxt))
                i += 2
                continue
            out.append("\\" + c if c in "(){}+?|" else c)
            i += 1
        pattern = "".join(out)
    try:
        return re.compile(pattern, flags)
    except re.error as e:
        raise ShellError(f"sed: cannot use the regular expression '{pattern}' ({e})") from None


def _sed_parse(script: str, extended: bool) -> list[_SedCommand]:
    commands, i = [], 0
    while i < len(script):
        while i < len(script) and script[i] in " \t\n;":
            i += 1
        if i >= len(script):
            break
        address: re.Pattern | int | str | None = None
        if script[i] == "/":
            text, i = _sed_split(script, i + 1, "/")
            address = _sed_regex(text, extended)
        elif script[i].isdigit():
            m = re.match(r"\d+", script[i:])
            address, i = int(m.group()), i + m.end()
        elif script[i] == "$":
            address, i = "$", i + 1
        verb = script[i] if i < len(script) else ""
        if verb == "s":
            delim = script[i + 1] if i + 1 < len(script) else ""
            if not delim or delim in "\\\n":
                raise ShellError(f"sed: bad s command in '{script}'")
            pattern, i = _sed_split(script, i + 2, delim)
            replacement, i = _sed_split(script, i, delim)
            m = re.match(r"[gIip0-9]*", script[i:])
            flags, i = m.group(), i + m.end()
            count = 0 if "g" in flags else int(re.sub(r"\D", "", flags) or 1)
            regex = _sed_regex(pattern, extended, re.I if "I" in flags or "i" in flags else 0)
            commands.append(_SedCommand(address, "s", regex, replacement, count, "p" in flags))
        elif verb in ("d", "p"):
            commands.append(_SedCommand(address, verb))
            i += 1
        else:
            raise ShellError(f"sed: only the s, d and p commands are supported, not '{script[i:i + 20]}'")
        while i < len(script) and script[i] in " \t":
            i += 1
        if i < len(script) and script[i] not in ";\n":
            raise ShellError(f"sed: unexpected '{script[i]}' in '{script}'")
    return commands


def _sed_replace(template: str, m: re.Match) -> str:
    out, i = [], 0
    while i < len(template):
        c = template[i]
        if c == "\\" and i + 1 < len(template):
            nxt = template[i + 1]
            if nxt.isdigit():
                out.append(m.group(int(nxt)) or "")
            else:
                out.append({"n": "\n", "t": "\t"}.get(nxt, nxt))
            i += 2
            continue
        out.append(m.group(0) if c == "&" else c)
        i += 1
    return "".join(out)


def _sed_apply(commands: list[_SedCommand], data: bytes, quiet: bool) -> bytes:
    lines = _decode(data).splitlines(keepends=True)
    out = []
    for number, line in enumerate(lines, 1):
        body, end = (line[:-1], "\n") if line.endswith("\n") else (line, "")
        deleted = False
        for c in commands:
            if isinstance(c.address, re.Pattern) and not c.address.search(body):
                continue
            if isinstance(c.address, int) and c.address != number:
                continue
            if c.address == "$" and number != len(lines):
                continue
            if c.verb == "d":
                deleted = True
                break
            if c.verb == "p":
                out.append(body + end)
            elif c.verb == "s":
                done = [0]

                def substitute(m: re.Match) -> str:
                    done[0] += 1
                    if c.count and done[0] != c.count:
                        return m.group(0)
                    return _sed_replace(c.replacement, m)

                new = c.pattern.sub(substitute, body)
                if new != body and c.print_:
                    out.append(new + end)
                body = new
        if not deleted and not quiet:
            out.append(body + end)
    return "".join(out).encode("utf-8", "surrogateescape")


# -- users and groups ---------------------------------------------------------------------------
def _make_home(call: Call, home: str, uid: int, gid: int) -> None:
    host = call.host(home)   # existing components are real directories inside root
    if _lexists(host) and not host.is_dir():
        raise _Failure(f"cannot create directory {home}")
    missing = []
    while not host.exists():   # everything that exists on the way is inside root (resolve)
        missing.append(host)
        host = host.parent
    for directory in reversed(missing):
        _new_dir(directory)
    host = call.host(home)
    call.owners[within(call.root, host)] = (uid, gid)


def _add_group(call: Call, name: str, gid: str | None, system: bool, exist_ok: bool = False) -> int:
    existing = accounts.groups(call.root)
    if name in existing:
        return 0 if exist_ok else call.fail(f"group '{name}' already exists", 9)
    taken = {g for g, _ in existing.values()}
    if gid is not None:
        if not gid.isdigit():
            return call.fail(f"invalid group ID '{gid}'", 3)
        if int(gid) in taken and not exist_ok:
            return call.fail(f"GID '{gid}' already exists", 4)
    accounts.add_group(call.root, name, int(gid) if gid is not None else accounts.next_id(taken, system))
    return 0


def groupadd(call: Call) -> int:
    opts, operands = _options(call, "rfo", "gK", {"system": "r", "gid": "g=", "force": "f",
                                                  "non-unique": "o", "key": "K="})
    if len(operands) != 1:
        return call.fail("expected one group name", 2)
    return _add_group(call, operands[0], opts.get("g"), bool(opts.get("r")), bool(opts.get("f")))


def addgroup(call: Call) -> int:
    """Debian's (`--system --gid N name`) and BusyBox's (`-S -g N name`); `addgroup user group`."""
    opts, operands = _options(call, "S", "g", {"system": "S", "gid": "g=", "quiet": "q", "force-badname": "b"})
    if len(operands) == 2:
        if accounts.user(call.root, operands[0]) is None:
            return call.fail(f"The user `{operands[0]}' does not exist.")
        if not accounts.add_member(call.root, operands[1], operands[0]):
            return call.fail(f"The group `{operands[1]}' does not exist.")
        return 0
    if len(operands) != 1:
        return call.fail("expected one group name")
    return _add_group(call, operands[0], opts.get("g"), bool(opts.get("S")))


def _add_user(call: Call, name: str, *, uid: str | None, group: str | None, same_group: bool,
              system: bool, home: str | None, create_home: bool, shell: str, gecos: str,
              extra: list[str]) -> int:
    if accounts.user(call.root, name) is not None:
        return call.fail(f"user '{name}' already exists", 9)
    taken = {u.uid for u in accounts.users(call.root)}
    if uid is not None:
        if not uid.isdigit():
            return call.fail(f"invalid user ID '{uid}'", 3)
        if int(uid) in taken:
            return call.fail(f"UID {uid} is not unique", 4)
        number = int(uid)
    else:
        number = accounts.next_id(taken, system)
    if group is not None:
        gid = accounts.group_id(call.root, group)
        if gid is None:
            return call.fail(f"group '{group}' does not exist", 6)
    elif same_group:
        existing = accounts.groups(call.root)
        if name in existing:
            gid = existing[name][0]
        else:
            gids = {g for g, _ in existing.values()}
            gid = number if number not in gids else accounts.next_id(gids, system)
            accounts.add_group(call.root, name, gid)
    else:
        gid = 65534 if system else 100
    for g in extra:
        if not accounts.add_member(call.root, g, name):
            return call.fail(f"group '{g}' does not exist", 6)
    home = home or f"/home/{name}"
    accounts.add_user(call.root, accounts.User(name, number, gid, home, shell), gecos)
    if create_home:
        _make_home(call, home, number, gid)
    return 0


def useradd(call: Call) -> int:
    opts, operands = _options(call, "rmMNUlo", "ugGdscekKp", {
        "system": "r", "create-home": "m", "no-create-home": "M", "no-user-group": "N", "user-group": "U",
        "no-log-init": "l", "non-unique": "o", "uid": "u=", "gid": "g=", "groups": "G=", "home-dir": "d=",
        "home": "d=", "shell": "s=", "comment": "c=", "expiredate": "e=", "key": "K=", "password": "p="})
    if len(operands) != 1:
        return call.fail("expected one user name", 2)
    extra = [g for g in str(opts.get("G", "")).split(",") if g]
    return _add_user(call, operands[0], uid=opts.get("u"), group=opts.get("g"), same_group=not opts.get("N"),
                     system=bool(opts.get("r")), home=opts.get("d"), create_home=bool(opts.get("m")),
                     shell=str(opts.get("s", "/bin/sh")), gecos=str(opts.get("c", "")), extra=extra)


def adduser(call: Call) -> int:
    """Debian's long options or BusyBox's short ones (-S -D -H -h -g -G -s -u); `adduser user group`."""
    opts, operands = _options(call, "SDH", "hgGsuk", {
        "system": "S", "disabled-password": "D", "disabled-login": "D", "no-create-home": "H",
        "home": "h=", "gecos": "g=", "comment": "g=", "ingroup": "G=", "gid": "gid=", "shell": "s=",
        "uid": "u=", "group": "group", "quiet": "q", "force-badname": "b", "allow-bad-names": "b"})
    if len(operands) == 2:
        if accounts.user(call.root, operands[0]) is None:
            return call.fail(f"The user `{operands[0]}' does not exist.")
        if not accounts.add_member(call.root, operands[1], operands[0]):
            return call.fail(f"The group `{operands[1]}' does not exist.")
        return 0
    if len(operands) != 1:
        return call.fail("expected one user name")
    system = bool(opts.get("S"))
    group = opts.get("G") or opts.get("gid")
    same_group = not system or bool(opts.get("group"))
    return _add_user(call, operands[0], uid=opts.get("u"), group=group, same_group=same_group and group is None,
                     system=system, home=opts.get("h"), create_home=not opts.get("H"),
                     shell=str(opts.get("s", "/usr/sbin/nologin" if system else "/bin/sh")),
                     gecos=str(opts.get("g", "")), extra=[])




# -- find ------------------------------------------------------------------------------------
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
        descend = _real_dir(host) and (self.maxdepth is None or depth < self.maxdepth)
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
                host.rmdir() if _real_dir(host) else host.unlink()
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
    return fnmatch.fnmatchcase(text.lower(), pattern.lower()) if fold else fnmatch.fnmatchcase(text, pattern)


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
    settings = {"post_order": False, "mindepth": 0, "maxdepth": None}
    tokens = []
    k = 0
    while k < len(args):
        a = args[k]
        if a in ("-depth", "-d"):
            settings["post_order"] = True
        elif a in ("-maxdepth", "-mindepth"):
            if k + 1 >= len(args) or not args[k + 1].isdigit():
                raise ShellError(f"find: {a} needs a number")
            settings[a[1:]] = int(args[k + 1])
            k += 1
        elif a in ("-xdev", "-mount", "-noleaf", "-ignore_readdir_race"):
            pass
        else:
            tokens.append(a)
        k += 1
    parser = _FindParser(tokens)
    expr = parser.parse() if tokens else _Find("true", ())
    if "delete" in parser.seen:
        settings["post_order"] = True
    if not parser.seen & _FIND_ACTIONS - {"prune"}:
        expr = _Find("and", (expr, _Find("print", ())))
    run = _FindRun(call, expr, bool(settings["post_order"]), int(settings["mindepth"]),
                   settings["maxdepth"] if settings["maxdepth"] is None else int(settings["maxdepth"]))
    for start in starts or ["."]:
        try:
            host = call.host(start, follow_last=False)
        except _Failure as e:
            run.status = call.fail(str(e))
            continue
        if not _lexists(host):
            run.status = call.fail(f"'{start}': No such file or directory")
            continue
        run.walk(start, host, 0)
    return run.finish()


class _FindParser:
    def __init__(self, tokens: list[str]):
        self.tokens, self.pos, self.seen = tokens, 0, set()

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


def usermod(call: Call) -> int:
    """The common `usermod -aG group user`, `-G`, `-s`, `-d`."""
    opts, operands = _options(call, "a", "Gsdg", {"append": "a", "groups": "G=", "shell": "s=", "home": "d=",
                                                   "gid": "g="})
    if len(operands) != 1:
        return call.fail("expected one user name", 2)
    name = operands[0]
    if accounts.user(call.root, name) is None:
        return call.fail(f"user '{name}' does not exist", 6)
    for group in [g for g in str(opts.get("G", "")).split(",") if g]:
        if not accounts.add_member(call.root, group, name):
            return call.fail(f"group '{group}' does not exist", 6)
    changes = {5: opts.get("d"), 6: opts.get("s")}
    if "g" in opts:
        gid = accounts.group_id(call.root, str(opts["g"]))
        if gid is None:
            return call.fail(f"group '{opts['g']}' does not exist", 6)
        changes[3] = str(gid)
    accounts.set_fields(call.root, name, {k: str(v) for k, v in changes.items() if v is not None})
    return 0


def grep(call: Call) -> int:
    opts, operands = _options(call, "qvicnlEFxwsrh", "e", {"quiet": "q", "silent": "q", "invert-match": "v",
                                                          "ignore-case": "i", "count": "c", "line-number": "n",
                                                          "extended-regexp": "E", "fixed-strings": "F",
                                                          "regexp": "e=", "line-regexp": "x", "word-regexp": "w",
                                                          "no-messages": "s"})
    if opts.get("r"):
        raise ShellError("grep: unsupported option '-r'")
    patterns = [str(opts["e"])] if "e" in opts else ([operands.pop(0)] if operands else [])
    if not patterns:
        return call.fail("no pattern given", 2)
    pattern = re.escape(patterns[0]) if opts.get("F") else _sed_regex(patterns[0], bool(opts.get("E"))).pattern
    if opts.get("w"):
        pattern = rf"\b(?:{pattern})\b"
    if opts.get("x"):
        pattern = rf"(?:{pattern})\Z"
    regex = re.compile(pattern, re.I if opts.get("i") else 0)
    found, status = _read_inputs(call, operands)
    status = 2 if status else 1
    for name, data in found:
        lines = _decode(data).splitlines()
        hits = [(n, line) for n, line in enumerate(lines, 1)
                if bool(regex.match(line) if opts.get("x") else regex.search(line)) != bool(opts.get("v"))]
        if hits and status != 2:
            status = 0
        if opts.get("q"):
            continue
        prefix = f"{name}:" if len(found) > 1 and not opts.get("h") else ""
        if opts.get("l"):
            if hits:
                call.print(name + "\n")
        elif opts.get("c"):
            call.print(f"{prefix}{len(hits)}\n")
        else:
            call.print("".join(f"{prefix}{str(n) + ':' if opts.get('n') else ''}{line}\n" for n, line in hits))
    return status


def wc(call: Call) -> int:
    opts, operands = _options(call, "lwc", long={"lines": "l", "words": "w", "bytes": "c"})
    chosen = [k for k in "lwc" if opts.get(k)] or ["l", "w", "c"]
    found, status = _read_inputs(call, operands)
    for name, data in found:
        counts = {"l": data.count(b"\n"), "w": len(data.split()), "c": len(data)}
        numbers = " ".join(str(counts[k]) for k in chosen)
        call.print(numbers + (f" {name}" if name != "-" else "") + "\n")
    return status


_TR_CLASSES = {"lower": "abcdefghijklmnopqrstuvwxyz", "upper": "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
               "digit": "0123456789", "space": " \t\n\r\f\v", "blank": " \t"}
_TR_CLASSES["alpha"] = _TR_CLASSES["lower"] + _TR_CLASSES["upper"]
_TR_CLASSES["alnum"] = _TR_CLASSES["alpha"] + _TR_CLASSES["digit"]


def _tr_set(text: str) -> str:
    text, _ = _unescape(text, octal_needs_zero=False)
    out, i = [], 0
    while i < len(text):
        m = re.match(r"\[:(\w+):\]", text[i:])
        if m and m.group(1) in _TR_CLASSES:
            out.append(_TR_CLASSES[m.group(1)])
            i += m.end()
        elif i + 2 < len(text) and text[i + 1] == "-":
            out.append("".join(chr(c) for c in range(ord(text[i]), ord(text[i + 2]) + 1)))
            i += 3
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def tr(call: Call) -> int:
    opts, operands = _options(call, "dsc", long={"delete": "d", "squeeze-repeats": "s", "complement": "c"})
    if opts.get("c"):
        raise ShellError("tr: unsupported option '-c'")
    if not operands or len(operands) > 2 or (len(operands) == 1 and not (opts.get("d") or opts.get("s"))):
        return call.fail("missing operand", 1)
    text = _decode(call.stdin)
    first = _tr_set(operands[0])
    if opts.get("d"):
        text = "".join(ch for ch in text if ch not in first)
        squeeze = _tr_set(operands[1]) if len(operands) > 1 else ""
    elif len(operands) == 2:
        second = _tr_set(operands[1])
        second = (second + second[-1:] * len(first))[:len(first)] if second else ""
        text = text.translate(str.maketrans(first, second)) if second else text
        squeeze = second
    else:
        squeeze = first
    if opts.get("s") and squeeze:
        text = re.sub("([" + re.escape(squeeze) + "])\\1+", r"\1", text)
    call.print(text)
    return 0


def sort(call: Call) -> int:
    opts, operands = _options(call, "runf", long={"reverse": "r", "unique": "u", "numeric-sort": "n",
                                                  "ignore-case": "f"})
    found, status = _read_inputs(call, operands)
    lines = [line for _, data in found for line in _decode(data).splitlines()]

    def key(line: str):
        if opts.get("n"):
            m = re.match(r"\s*(-?\d+(?:\.\d+)?)", line)
            return (float(m.group(1)) if m else 0.0, line)
        return (line.lower(), line) if opts.get("f") else (line, "")

    lines.sort(key=key, reverse=bool(opts.get("r")))
    if opts.get("u"):
        lines = [line for k, line in enumerate(lines) if k == 0 or key(line)[0] != key(lines[k - 1])[0]]
    call.print("".join(line + "\n" for line in lines))
    return status


def install(call: Call) -> int:
    """`install -d dirs`, `install [-D] [-m mode] src dest`, `install src... dir`, `-t dir`."""
    opts, operands = _options(call, "dDcCsvp", "mogt", {"directory": "d", "mode": "m=", "owner": "o=",
                                                        "group": "g=", "target-directory": "t=",
                                                        "verbose": "v", "compare": "C", "strip": "s",
                                                        "preserve-timestamps": "p"})
    mode_spec = str(opts.get("m", "755"))
    _parse_mode(call, mode_spec, 0, False)
    owner = None
    if "o" in opts or "g" in opts:
        uid = accounts.user_id(call.root, str(opts.get("o", "root")))
        gid = accounts.group_id(call.root, str(opts.get("g", "root")))
        if uid is None or gid is None:
            return call.fail(f"invalid user or group '{opts.get('o', '')}:{opts.get('g', '')}'")
        owner = (uid, gid)

    def finish(host: Path) -> None:
        os.chmod(host, _parse_mode(call, mode_spec, stat.S_IMODE(host.stat().st_mode), host.is_dir()))
        if owner:
            call.owners[within(call.root, host)] = owner

    def make_dirs(path: str) -> Path:
        parts = [p for p in call.guest(path).split("/") if p]
        for k in range(1, len(parts) + 1):
            host = call.host("/" + "/".join(parts[:k]))
            if not host.is_dir():
                if _lexists(host):
                    raise _Failure(f"cannot create directory '{path}': File exists")
                _new_dir(host)
        return call.host(path)

    if opts.get("d"):
        return _each(call, operands, lambda path: finish(make_dirs(path)))
    if "t" in opts:
        sources, dest, into = operands, str(opts["t"]), True
    else:
        if len(operands) < 2:
            return call.fail("missing destination file operand")
        *sources, dest = operands
        into = len(sources) > 1 or _real_dir(call.host(dest))
    if opts.get("D"):
        make_dirs(dest if into else posixpath.dirname(call.guest(dest)))

    def copy(source: str) -> None:
        src = call.host(source)
        if not src.is_file():
            raise _Failure(f"cannot stat '{source}': No such file or directory" if not src.exists()
                           else f"omitting directory '{source}'")
        target, shown = _target(call, dest, into, source)
        host = call.host(target)
        if _lexists(host) and not _real_dir(host):
            host.unlink()
        _copy_entry(call, src, target, shown, False, False)
        finish(call.host(target))

    return _each(call, sources, copy)


def xargs(call: Call) -> int:
    opts, operands = _options(call, "r0t", "nId", {"no-run-if-empty": "r", "null": "0", "max-args": "n=",
                                                   "replace": "I=", "delimiter": "d=", "verbose": "t"})
    text = _decode(call.stdin)
    command = operands or ["echo"]
    if "I" in opts:
        items = [line for line in text.splitlines() if line.strip()]
    elif opts.get("0") or "d" in opts:
        delim = "\0" if opts.get("0") else _unescape(str(opts["d"]), False)[0]
        items = [item for item in text.split(delim) if item]
    else:
        try:
            items = shlex.split(text)
        except ValueError as e:
            return call.fail(f"unmatched quote in the input ({e})")
    if "I" in opts:
        batches = [[arg.replace(str(opts["I"]), item) for arg in command] for item in items]
    else:
        size = int(str(opts["n"])) if "n" in opts and str(opts["n"]).isdigit() else max(len(items), 1)
        batches = [command + items[k:k + size] for k in range(0, len(items), size)] or \
            ([] if opts.get("r") else [list(command)])
    status = 0
    for argv in batches:
        if opts.get("t"):
            call.err((" ".join(argv) + "\n").encode("utf-8", "surrogateescape"))
        if call.run(argv) != 0:
            status = 123
    return status


class _StrippedTar:
    """A tar's members with `--strip-components` applied, for rootfs.extract_tar."""

    def __init__(self, tar: tarfile.TarFile, strip: int, wanted: list[str]):
        self.tar, self.strip, self.wanted = tar, strip, wanted

    def _strip(self, name: str) -> str | None:
        parts = [p for p in name.split("/") if p not in ("", ".")]
        return "/".join(parts[self.strip:]) if len(parts) > self.strip else None

    def __iter__(self):
        for m in self.tar:
            if self.wanted and not any(m.name.strip("./") == w.strip("./") or
                                       m.name.strip("./").startswith(w.strip("./") + "/") for w in self.wanted):
                continue
            name = self._strip(m.name)
            if name is None:
                continue
            if m.islnk():
                link = self._strip(m.linkname)
                if link is None:
                    continue
                m.linkname = link
            m.name = name
            yield m

    def extractfile(self, member: tarfile.TarInfo):
        return self.tar.extractfile(member)


def tar(call: Call) -> int:
    """Extracting (and listing) archives into the rootfs: `tar -xzf file -C dir`."""
    args = list(call.args)
    if args and not args[0].startswith("-"):
        args[0] = "-" + args[0]   # tar xzf file
    opts, operands = _options(call, "xtzjJvopcaP", "fC", {
        "extract": "x", "get": "x", "list": "t", "gzip": "z", "bzip2": "j", "xz": "J", "verbose": "v",
        "file": "f=", "directory": "C=", "strip-components": "strip=", "no-same-owner": "o",
        "no-same-permissions": "no-same-permissions", "same-permissions": "p", "preserve-permissions": "p",
        "overwrite": "overwrite", "create": "c"}, args=args)
    if opts.get("c"):
        raise ShellError("tar: creating archives (-c) is not supported in RUN")
    if not (opts.get("x") or opts.get("t")):
        raise ShellError("tar: only -x (extract) and -t (list) are supported in RUN")
    strip = str(opts.get("strip", "0"))
    if not strip.isdigit():
        return call.fail(f"invalid number of elements to strip: '{strip}'", 2)
    name = str(opts.get("f", "-"))
    try:
        data = call.stdin if name == "-" else call.host(name).read_bytes()
    except (_Failure, OSError):
        return call.fail(f"{name}: Cannot open: No such file or directory", 2)
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
            members = _StrippedTar(archive, int(strip), operands)
            if opts.get("t"):
                call.print("".join(m.name + ("/" if m.isdir() else "") + "\n" for m in members))
                return 0
            dest = call.host(str(opts.get("C", ".")))
            if not _real_dir(dest):
                return call.fail(f"{opts.get('C')}: Cannot open: No such file or directory", 2)
            written = extract_tar(members, call.root, within(call.root, dest), f"tar {name}")
    except (tarfile.TarError, EOFError) as e:
        return call.fail(f"{name}: not a readable archive ({e})", 2)
    except BoxerError as e:
        return call.fail(str(e), 2)
    if opts.get("v"):
        call.print("".join(w + "\n" for w in sorted(written)))
    return 0


UTILITIES: dict[str, Utility] = {
    "echo": echo, "printf": printf, "cat": cat, "tee": tee, "head": _head_tail, "tail": _head_tail,
    "sleep": sleep, "pwd": pwd, "basename": basename, "dirname": dirname, "which": which,
    "test": test, "[": test, "mkdir": mkdir, "rmdir": rmdir, "rm": rm, "touch": touch, "cp": cp,
    "mv": mv, "ln": ln, "chmod": chmod, "chown": chown, "ls": ls, "sed": sed,
    "groupadd": groupadd, "addgroup": addgroup, "useradd": useradd, "adduser": adduser,
    "find": find_files, "chgrp": chgrp, "usermod": usermod, "grep": grep, "wc": wc, "tr": tr, "sort": sort,
    "install": install, "xargs": xargs, "tar": tar,
}
