"""What a run is asked to do and what it gave back: plain data, no Wasmtime.

The CLI, the API, the MCP server and the build import these without loading the engine.
"""
from __future__ import annotations

import base64
import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from boxer_py.errors import RunError
from boxer_py.runtime.net.policy import Network
from boxer_py.runtime.output import is_text

TRAP_EXIT_CODE = 134  # like a native program killed by SIGABRT
TIMEOUT_EXIT_CODE = 124  # like timeout(1)
INTERRUPT_EXIT_CODE = 130  # like a native program ended by Ctrl-C (SIGINT)


MAX_TIMEOUT = 30 * 86400.0  # seconds: a month; longer is a mistake (or an attack), not a limit
MAX_SIZE = 1 << 60  # bytes: far past any machine, small enough for every engine call
_SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([kmgt]?)(?:i?b)?", re.IGNORECASE)
_N = TypeVar("_N", int, float)  # a limit's number: seconds or bytes
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


class LimitError(RunError, ValueError):
    """A limit that is not a finite, positive number in range: one line, naming the limit."""


def parse_timeout(value: str | float | None, what: str = "timeout") -> float | None:
    """Seconds, finite and above 0 (at most MAX_TIMEOUT); None for no limit. Every timeout a
    run gets (CLI, API, MCP, Limits itself) goes through here: NaN and infinity are refused,
    so `min(asked, ceiling)` can never let one through."""
    if value is None:
        return None
    seconds: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and len(value) <= 64:
        try:
            seconds = float(value.strip())
        except ValueError:
            seconds = None
    if seconds is None or not math.isfinite(seconds) or not 0 < seconds <= MAX_TIMEOUT:
        raise LimitError(f"{what}: {_show(value)} is not a number of seconds above 0 and at most "
                         f"{MAX_TIMEOUT:g}")
    return seconds


def parse_size(value: str | int | float | None, what: str = "size") -> int | None:
    """Docker-style sizes: 512m, 1g, 64k, or bytes; above 0 and at most MAX_SIZE; None for no
    limit. Every size limit goes through here (see parse_timeout)."""
    if value is None:
        return None
    size: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif isinstance(value, float) and math.isfinite(value) and value < MAX_SIZE + 1:
        size = int(value)
    elif isinstance(value, str) and len(value) <= 64:
        match = _SIZE.fullmatch(value.strip())
        if match:
            number = float(match.group(1))
            size = int(number * _UNITS[match.group(2).lower()]) if number < MAX_SIZE + 1 else MAX_SIZE + 1
    if size is None or not 0 < size <= MAX_SIZE:
        raise LimitError(f"{what}: {_show(value)} is not a size above 0 such as 512m, 1g or 65536"
                         + (" (at most 1024p)" if size is not None and size > MAX_SIZE else ""))
    return size


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass(frozen=True)
class Mount:
    """A host directory shown to the guest at `guest` (read-only if `read_only`), as `-v`."""

    host: Path
    guest: str
    read_only: bool = False
    writable: bool = False  # `:rw` said so (the default for a directory and a single file alike)

    @classmethod
    def parse(cls, spec: str) -> Mount:
        """Docker's -v syntax: HOST:GUEST[:OPTIONS], OPTIONS a comma-separated list of ro, rw
        and the SELinux labels z and Z (no meaning here: ignored, as on a host without SELinux).
        A relative HOST is taken from the working directory (Docker takes ./x the same way)."""
        parts = spec.split(":")
        read_only = False
        if len(parts) == 3:
            options = parts.pop().split(",")
            unknown = [o for o in options if o not in ("ro", "rw", "z", "Z", "")]
            if unknown or ("ro" in options and "rw" in options):
                raise RunError(f"-v {spec}: unknown mount option {','.join(unknown) or 'ro,rw'} "
                               "(ro, rw, z and Z are known)")
            read_only = "ro" in options
            writable = "rw" in options
        else:
            writable = False
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise RunError(f"-v {spec}: expected HOST:GUEST[:ro]")
        return cls(Path(parts[0]), parts[1], read_only, writable)


@dataclass(frozen=True)
class Limits:
    """What one run may consume. None means no limit.

    Every value is checked here, on construction (parse_timeout, parse_size): a Limits that
    exists holds only finite, positive, in-range numbers, whoever made it."""

    timeout: float | None = None  # seconds of wall-clock time
    memory: int | None = None  # bytes of guest linear memory
    max_output: int | None = None  # bytes kept of stdout and of stderr each, and of /out files in all
    disk: int | None = None  # bytes the writable layer may grow by (see runwatch)

    def __post_init__(self) -> None:
        object.__setattr__(self, "timeout", parse_timeout(self.timeout))
        for name in ("memory", "max_output", "disk"):
            object.__setattr__(self, name, parse_size(getattr(self, name), name.replace("_", "-")))

    @classmethod
    def parse(cls, timeout: str | float | None = None, memory: str | int | None = None,
              max_output: str | int | None = None, disk: str | int | None = None) -> Limits:
        """Limits from text or numbers (CLI options, API arguments, MCP call arguments)."""
        return cls(parse_timeout(timeout), parse_size(memory, "memory"), parse_size(max_output, "max-output"),
                   parse_size(disk, "disk"))

    def within(self, ceiling: Limits) -> Limits:
        """These limits, never looser than `ceiling`'s: a caller may narrow an operator's
        limits (a shorter timeout), never widen them; what it leaves unset is the ceiling."""
        def tighter(asked: _N | None, most: _N | None) -> _N | None:
            return most if asked is None else asked if most is None else min(asked, most)
        return Limits(tighter(self.timeout, ceiling.timeout), tighter(self.memory, ceiling.memory),
                      tighter(self.max_output, ceiling.max_output), tighter(self.disk, ceiling.disk))


Ready = Callable[[], "tuple[str, ...] | None"]  # RunSpec.ready


@dataclass(frozen=True)
class RunSpec:
    """What to run and with what: each field overrides the image config when set."""

    command: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    env: dict[str, str] = field(default_factory=dict)
    workdir: str | None = None
    mounts: tuple[Mount, ...] = ()
    stdin: bytes | str | None = None  # bytes, a host file, "-" for this process's stdin, None for empty
    limits: Limits = Limits()
    stream: bool = False  # also write the guest's output to this process's stdout/stderr as it comes
    output_dir: str | None = "/out"  # files the guest leaves here are returned in RunResult.files
    on_start: Callable[[], None] | None = None  # called right before the guest's first instruction
    # Called once on the run's thread when all that comes before its guest's first instruction is
    # done (the layer, the instance, a snapshot restored), or before a shell-form command's first
    # step; a launcher without epochs starts the run's clocks (timeout, duration) after it. The
    # run server's spare waits in it for its request (cli/server.py). It may return another
    # command: no guest ran, and that command runs instead in the same writable layer, as a run
    # of a spec with that command would (its program found; an instance in which no guest code ran).
    ready: Ready | None = None
    network: Network = Network()  # published ports and allowed hosts; empty: no network at all
    on_listen: Callable[[list[dict[str, object]]], None] | None = None  # told the published ports once bound
    on_refused: Callable[[dict[str, object]], None] | None = None  # told each refused bind/connect as it happens
    tty: bool = False  # stdout/stderr that are terminals go to the guest as they are (isatty() true)
    read_only: bool = False  # the writable layer is read-only (docker run --read-only); mounts are not
    user: str | None = None  # the USER to run as (WASI has no users: it chooses the default HOME only)
    cancel: threading.Event | None = None  # set (from any thread) to stop the run now
    interrupt: threading.Event | None = None  # set on Ctrl-C: a KeyboardInterrupt in a CPython guest, else a stop
    resize: threading.Event | None = None  # with tty: set when the terminal was resized; the guest follows (winsize)
    files: tuple[tuple[str, bytes], ...] = ()  # (guest path, content): put into the writable layer first
    on_stdout: Callable[[bytes], object] | None = None  # handed the guest's output as it comes
    # A launcher without epochs (exitwatch.py): told the result of a run stopped from outside
    # (timeout, --disk, cancel, a Ctrl-C it could not deliver), with its output so far; ends the process.
    on_stop: Callable[[RunResult], None] | None = None
    on_stderr: Callable[[bytes], object] | None = None


@dataclass
class RunResult:
    """What a run gave back. `to_json()` is `boxer run --json`'s object."""

    exit_code: int
    stdout: bytes = b""
    stderr: bytes = b""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    duration_ms: float = 0.0
    timed_out: bool = False
    out_of_memory: bool = False
    trap: str | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    files_truncated: bool = False  # some files under the output dir were over the size cap and left out
    disk_full: bool = False  # the writable layer grew past the disk limit (the run was stopped)
    preinitialised: bool = False  # started from a snapshot of an interpreter that had already started
    stdout_dropped: int = 0  # bytes cut from the middle of a truncated stream (its head and tail are kept)
    stderr_dropped: int = 0
    error: dict[str, Any] | None = None  # {"type", "message", "traceback"}: why a Python guest failed, or
    #                                      why the run could not start (traceback None)
    peak_memory: int = 0  # bytes of guest linear memory at its largest (memory never shrinks)
    cpu_ms: float = 0.0  # CPU time the guest's thread used
    restarted: bool | None = None  # an Interpreter's call: whether its interpreter was started anew
    network: dict[str, Any] | None = None  # a networked run's ports, connections and refusals

    def to_json(self) -> dict[str, Any]:
        """JSON-ready: stdout/stderr and files as UTF-8 text when they are text (`is_text`),
        else base64, each with its `encoding`."""
        files = []
        for path, data in sorted(self.files.items()):
            # a name the guest made need not be UTF-8: shown with \xNN escapes, never raising
            path = path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            encoding, content = _encode(data)
            files.append({"path": path, "size": len(data), "encoding": encoding, "content": content})
        (stdout_encoding, stdout), (stderr_encoding, stderr) = _encode(self.stdout), _encode(self.stderr)
        doc = {
            "exit_code": self.exit_code,
            "stdout": stdout,
            "stderr": stderr,
            "stdout_encoding": stdout_encoding,
            "stderr_encoding": stderr_encoding,
            "stdout_truncated": self.stdout_truncated,
            "stderr_truncated": self.stderr_truncated,
            "stdout_dropped": self.stdout_dropped,
            "stderr_dropped": self.stderr_dropped,
            "duration_ms": round(self.duration_ms, 3),
            "cpu_ms": round(self.cpu_ms, 3),
            "peak_memory": self.peak_memory,
            "timed_out": self.timed_out,
            "out_of_memory": self.out_of_memory,
            "trap": self.trap,
            "error": self.error,
            "files": files,
            "files_truncated": self.files_truncated,
            "disk_full": self.disk_full,
            "preinitialised": self.preinitialised,
            **({} if self.network is None else {"network": self.network}),
        }
        if self.restarted is not None:
            doc["restarted"] = self.restarted
        return doc


def _encode(data: bytes) -> tuple[str, str]:
    return ("utf-8", data.decode()) if is_text(data) else ("base64", base64.b64encode(data).decode())
