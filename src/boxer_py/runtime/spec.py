"""What a run is asked to do and what it gave back: plain data, no Wasmtime.

The CLI, the API, the MCP server and the build import these without loading the engine.
"""
from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from boxer_py.errors import RunError

TRAP_EXIT_CODE = 134  # like a native program killed by SIGABRT
TIMEOUT_EXIT_CODE = 124  # like timeout(1)


def parse_size(text: str | int | None) -> int | None:
    """Docker-style sizes: 512m, 1g, 64k, or bytes."""
    if text is None or isinstance(text, int):
        return text
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    t = text.strip().lower().removesuffix("b")
    scale = units.get(t[-1:], 1)
    try:
        return int(float(t[:-1] if t[-1:] in units else t) * scale)
    except ValueError:
        raise ValueError(f"{text!r}: expected a size such as 512m, 1g or 65536") from None


@dataclass(frozen=True)
class Mount:
    host: Path
    guest: str
    read_only: bool = False

    @classmethod
    def parse(cls, spec: str) -> Mount:
        """Docker's -v syntax: HOST:GUEST[:ro|rw]."""
        parts = spec.split(":")
        read_only = False
        if len(parts) == 3 and parts[2] in ("ro", "rw"):
            read_only = parts.pop() == "ro"
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise RunError(f"-v {spec}: expected HOST:GUEST[:ro]")
        return cls(Path(parts[0]), parts[1], read_only)


@dataclass(frozen=True)
class Limits:
    """What one run may consume. None means no limit."""

    timeout: float | None = None  # seconds of wall-clock time
    memory: int | None = None  # bytes of guest linear memory
    max_output: int | None = None  # bytes kept of stdout and of stderr each, and of /out files in all
    disk: int | None = None  # bytes the writable layer may grow by (see runwatch)


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


@dataclass
class RunResult:
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

    def to_json(self) -> dict:
        """JSON-ready: text as UTF-8 (invalid bytes replaced), files as text or base64."""
        files = []
        for path, data in sorted(self.files.items()):
            try:
                files.append({"path": path, "size": len(data), "encoding": "utf-8", "content": data.decode()})
            except UnicodeDecodeError:
                files.append({"path": path, "size": len(data), "encoding": "base64",
                              "content": base64.b64encode(data).decode()})
        return {
            "exit_code": self.exit_code,
            "stdout": self.stdout.decode(errors="replace"),
            "stderr": self.stderr.decode(errors="replace"),
            "stdout_truncated": self.stdout_truncated,
            "stderr_truncated": self.stderr_truncated,
            "duration_ms": round(self.duration_ms, 3),
            "timed_out": self.timed_out,
            "out_of_memory": self.out_of_memory,
            "trap": self.trap,
            "files": files,
            "files_truncated": self.files_truncated,
            "disk_full": self.disk_full,
            "preinitialised": self.preinitialised,
        }

