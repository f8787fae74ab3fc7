"""Every limit of the RUN shell, and the checks every path goes through.

A RUN line comes from a hostile Dockerfile and works on a hostile rootfs, on the build host.
Whatever it asks for, the shell's time and memory stay bounded: each count (loop iterations,
commands, nesting, fields, regex/glob matching steps) and each size (values, variables, pipes,
$(...) output, files read, text a utility builds, the build log) is checked here, before the
thing is built or read, and going over is a one-line ShellError that names the limit (the build
shows it as `Dockerfile:N: RUN: ...`).

The counts are per RUN: run_script makes one Budget and installs it (`running`); everything
that counts (the interpreter, expansion, the regular expression and glob engine, utilities)
reaches it through `budget()`, so no path has a budget of its own.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from boxer_py.errors import BoxerError, ShellError
from boxer_py.image import hostfs
from boxer_py.image.rootfs import resolve

KiB, MiB = 1 << 10, 1 << 20

# -- time: counts per RUN ------------------------------------------------------------------------
MAX_NESTING = 64                  # eval, source, $(...), subshells, sh -c and function calls, nested
MAX_LOOP_ITERATIONS = 10_000      # one while/until loop
MAX_SCRIPT_ITERATIONS = 100_000   # all for/while/until iterations of one RUN
MAX_COMMANDS = 100_000            # commands run (builtins, utilities, functions, externals) in one RUN
MAX_PARSED = 1 * MiB              # script text parsed anew in one RUN (eval, source, sh -c, $(...) included)
MAX_MATCH_STEPS = 10_000_000      # regular expression and glob matching steps in one RUN (~30 s)

# -- memory: sizes ----------------------------------------------------------------------------------
MAX_SCRIPT = 256 * KiB            # one script text: a RUN line, an eval string, a sourced file, sh -c
MAX_VALUE = 1 * MiB               # one expanded word, variable value, $(...) output or here-document
MAX_VARIABLES = 16 * MiB          # all variables of one shell (names and values)
MAX_FIELDS = 100_000              # words of one command line, a `for` list or a glob's results
MAX_ARGV = 4 * MiB                # characters of one command line
MAX_STREAM = 16 * MiB             # a pipe's buffer, a file a utility reads, text a utility builds
MAX_LINES = 1_000_000             # lines of one input split into lines (sort, sed, grep...)
MAX_TAR_MEMBERS = 200_000         # members of one archive tar lists or extracts
MAX_PATTERN = 4096                # characters of a regular expression or of a shell pattern
MAX_PROGRAM = 20_000              # instructions of a compiled regular expression ({m,n} expanded)
MAX_ARITHMETIC = 4096             # characters of one $((...)) expression
MAX_LOG = 1 * MiB                 # the build log keeps the first and the last MAX_LOG bytes of a RUN


def size_text(n: int) -> str:
    return f"{n // MiB} MiB" if n >= MiB and n % MiB == 0 else (f"{n // KiB} KiB" if n % KiB == 0 else str(n))


class Budget:
    """The counts of one RUN."""

    def __init__(self, stop: Callable[[], None] | None = None) -> None:
        self.stop = stop   # raises when the script must end now (boxer run's timeout, Ctrl-C)
        self.depth = 0
        self.iterations = 0
        self.commands = 0
        self.steps = 0
        self.parse = 0

    @contextlib.contextmanager
    def nested(self, what: str) -> Iterator[None]:
        """One more level of eval, source, $(...), subshell or function call."""
        if self.depth >= MAX_NESTING:
            raise ShellError(f"commands nested more than {MAX_NESTING} deep ({what})")
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1

    def iteration(self, kind: str, n: int) -> None:
        """The n-th iteration (1-based) of one `kind` loop is about to run."""
        self.iterations += 1
        if self.stop is not None:
            self.stop()
        if self.iterations > MAX_SCRIPT_ITERATIONS:
            raise ShellError(f"loops ran more than {MAX_SCRIPT_ITERATIONS} iterations in one RUN")
        if kind != "for" and n > MAX_LOOP_ITERATIONS:
            raise ShellError(f"{kind} loop still running after {MAX_LOOP_ITERATIONS} iterations")

    def command(self) -> None:
        self.commands += 1
        if self.stop is not None:
            self.stop()
        if self.commands > MAX_COMMANDS:
            raise ShellError(f"more than {MAX_COMMANDS} commands ran in one RUN")

    def parsed(self, n: int) -> None:
        self.parse += n
        if self.parse > MAX_PARSED:
            raise ShellError(f"more than {size_text(MAX_PARSED)} of script text parsed in one RUN "
                             "(eval, source, sh -c and $(...) included)")

    def match_steps(self, n: int) -> None:
        self.steps += n
        if self.steps > MAX_MATCH_STEPS:
            raise ShellError(f"pattern matching took more than {MAX_MATCH_STEPS} steps in one RUN "
                             "(a regular expression or pattern that backtracks?)")


_current: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("boxer_shell_budget", default=None)


def budget() -> Budget:
    """The budget of the RUN being interpreted (outside run_script, e.g. a unit test calling a
    utility, a fresh one for each call)."""
    found = _current.get()
    return found if found is not None else Budget()


@contextlib.contextmanager
def running(b: Budget) -> Iterator[Budget]:
    token = _current.set(b)
    try:
        yield b
    finally:
        _current.reset(token)


# -- sizes ------------------------------------------------------------------------------------------
def check_value(n: int, what: str = "a word") -> None:
    """An expanded word or value of n characters (checked while it grows, before it is joined)."""
    if n > MAX_VALUE:
        raise ShellError(f"{what} expands to more than {size_text(MAX_VALUE)} (does a value refer to itself, "
                         "as in A=$A$A?)")


def check_fields(n: int, what: str = "a command line") -> None:
    if n > MAX_FIELDS:
        raise ShellError(f"{what} has more than {MAX_FIELDS} words")


def check_argv(argv: list[str]) -> None:
    """Every command line, however it was made (expansion, xargs, find -exec), before it runs."""
    check_fields(len(argv))
    total = 0
    for word in argv:
        total += len(word) + 1
        if total > MAX_ARGV:
            argv_too_long(argv[0])


class Words:
    """The words of a command line (or a `for` list) as they are expanded: each one is counted
    and measured as it comes, so `echo "$A" "$A" ...` stops at the limit, not after a gigabyte."""

    def __init__(self, what: str):
        self.what, self.count, self.size = what, 0, 0

    def add(self, word: str) -> str:
        self.count += 1
        self.size += len(word) + 1
        if self.count > MAX_FIELDS:
            raise ShellError(f"{self.what} has more than {MAX_FIELDS} words")
        if self.size > MAX_ARGV:
            raise ShellError(f"{self.what} is longer than {size_text(MAX_ARGV)}")
        return word


def argv_too_long(name: str) -> None:
    raise ShellError(f"a command line is longer than {size_text(MAX_ARGV)} ({name[:40]!r} ...)")


def check_stream(n: int, what: str) -> None:
    if n > MAX_STREAM:
        raise ShellError(f"{what} is larger than {size_text(MAX_STREAM)}")


def check_pattern(pattern: str, what: str = "a pattern") -> None:
    if len(pattern) > MAX_PATTERN:
        raise ShellError(f"{what} is longer than {MAX_PATTERN} characters")


def check_arithmetic(expr: str) -> None:
    if len(expr) > MAX_ARITHMETIC:
        raise ShellError(f"an arithmetic expression $((...)) is longer than {MAX_ARITHMETIC} characters")


class Variables(dict):
    """A shell's variables, their total size kept under MAX_VARIABLES and each value under MAX_VALUE.
    Every assignment (NAME=x, export, local, read, for, ${X:=y}, cd's PWD...) goes through
    __setitem__."""

    def __init__(self, initial: dict[str, str] | None = None):
        super().__init__()
        self.size = 0
        for k, v in (initial or {}).items():
            self[k] = v

    def __setitem__(self, name: str, value: str) -> None:
        check_value(len(value), f"the variable {name[:40]}")
        old = super().get(name)
        size = self.size + len(name) + len(value) - (len(name) + len(old) if old is not None else 0)
        if size > MAX_VARIABLES:
            raise ShellError(f"the shell's variables add up to more than {size_text(MAX_VARIABLES)}")
        super().__setitem__(name, value)
        self.size = size

    def __delitem__(self, name: str) -> None:
        old = super().pop(name)
        self.size -= len(name) + len(old)

    def pop(self, name: str, *default):
        if name in self:
            value = super().__getitem__(name)
            del self[name]
            return value
        if default:
            return default[0]
        raise KeyError(name)

    def setdefault(self, name: str, value: str = "") -> str:   # type: ignore[override]
        if name not in self:
            self[name] = value
        return super().__getitem__(name)

    def update(self, *args, **kw) -> None:
        for k, v in dict(*args, **kw).items():
            self[k] = v

    def copy(self) -> Variables:
        new = Variables()
        dict.update(new, self)   # already checked
        new.size = self.size
        return new


def read_file(host: Path, limit: int = MAX_STREAM) -> bytes:
    """A whole regular file of the rootfs, at most `limit` bytes: its size is checked before a
    byte is read (a sparse file can claim a terabyte), and a FIFO or device is refused, never
    opened for a blocking read. Raises OSError (for the caller's usual message) or ShellError."""
    fd = os.open(host, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    try:
        return hostfs.read_bounded(fd, limit)
    except hostfs.NotRegular as e:
        if stat.S_ISDIR(e.mode):
            raise IsADirectoryError(21, "Is a directory", str(host)) from None
        raise ShellError(f"{host.name}: not a regular file (a FIFO, socket or device is not read in RUN)") from None
    except hostfs.TooLarge as e:
        raise ShellError(f"{host.name}: the file is larger than {size_text(limit)} "
                         f"({e.size} bytes), more than RUN reads into memory") from None
    finally:
        os.close(fd)


def check_dense(host: Path) -> None:
    """A file about to be copied: a sparse one (a program of the image can seek past the end of
    a file) would be written dense, a terabyte of zeros on the build host's disk."""
    st = os.lstat(host)
    if st.st_size > MAX_STREAM and st.st_blocks * 512 < st.st_size // 2:
        raise ShellError(f"{host.name}: a sparse file ({st.st_size} bytes, {st.st_blocks * 512} of them stored); "
                         "RUN does not copy it")


def read_guest(root: Path, guest: str, limit: int = MAX_STREAM) -> bytes | None:
    """read_file of a guest path resolved inside `root`; None when it cannot be resolved or
    opened (the caller prints its usual "No such file" message). Too large or not a regular
    file stays a ShellError: the build stops with the limit's name."""
    try:
        host = resolve(root, guest)
    except BoxerError:
        return None
    try:
        return read_file(host, limit)
    except OSError:
        return None


def split_lines(data: bytes | str, keepends: bool = False) -> list:
    """An input's lines (at most MAX_LINES): every utility that works line by line splits here."""
    newline = b"\n" if isinstance(data, bytes) else "\n"
    if data.count(newline) > MAX_LINES:   # type: ignore[arg-type]
        raise ShellError(f"an input has more than {MAX_LINES} lines")
    return data.splitlines(keepends)


class Collector:
    """Text a utility builds before writing it (sed's output, printf's): bounded by MAX_STREAM
    while it grows, so a replacement or a field width cannot multiply it past the limit."""

    def __init__(self, what: str):
        self.parts: list[str] = []
        self.size = 0
        self.what = what

    def add(self, text: str) -> None:
        self.size += len(text)
        if self.size > MAX_STREAM:
            raise ShellError(f"{self.what} is larger than {size_text(MAX_STREAM)}")
        self.parts.append(text)

    def text(self) -> str:
        return "".join(self.parts)
