"""Where a RUN command's output goes and where its input comes from.

The build log, a pipe's buffer, /dev/null and files of the rootfs are all sinks (`write`);
stdin is a byte string only `read` consumes. Pipelines are buffered: the left side finishes
before the right side reads.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from boxer_py.errors import ShellError
from boxer_py.shell import limits
from boxer_py.shell.utilities.core import FILE_MODE


class Log:
    """The build log: stdout and stderr not redirected to files, in order. It keeps the first
    and the last limits.MAX_LOG bytes of a RUN (the last line names a failure); what lies
    between is counted, not kept."""

    def __init__(self, log: bytearray, echo: Callable[[bytes], None] | None = None):
        self.log = log               # the head, up to MAX_LOG bytes
        self.tail = bytearray()      # after the head: the last MAX_LOG bytes (up to twice, then trimmed)
        self.dropped = 0
        self.echo = echo             # told every write as it happens: the build's progress streams it

    def write(self, data: bytes) -> None:
        if self.echo is not None and data:
            self.echo(bytes(data))
        room = limits.MAX_LOG - len(self.log)
        if room > 0:
            self.log += data[:room]
            data = data[room:]
        if not data:
            return
        if len(data) > limits.MAX_LOG:
            self.dropped += len(self.tail) + len(data) - limits.MAX_LOG
            self.tail = bytearray(data[-limits.MAX_LOG:])
            return
        self.tail += data
        if len(self.tail) > 2 * limits.MAX_LOG:
            cut = len(self.tail) - limits.MAX_LOG
            self.dropped += cut
            del self.tail[:cut]

    def value(self) -> bytes:
        if not self.dropped:
            return bytes(self.log + self.tail)
        marker = f"\n[boxer: {self.dropped} bytes of this RUN's output not kept]\n".encode()
        return bytes(self.log) + marker + bytes(self.tail)


class Buffer:
    """A pipe's buffer or the output of $(...): the left side finishes before the right side
    reads, so it is bounded (`limit` bytes) rather than streamed."""

    def __init__(self, limit: int = limits.MAX_STREAM, what: str = "the output written into a pipe") -> None:
        self.data = bytearray()
        self.limit, self.what = limit, what

    def write(self, data: bytes) -> None:
        if len(self.data) + len(data) > self.limit:
            raise ShellError(f"{self.what} is larger than {limits.size_text(self.limit)}")
        self.data += data


class Input:
    """A command's stdin. Only `read` consumes it, line by line (`while read x; do ...; done < f`);
    other commands see what is left without consuming it."""

    def __init__(self, data: bytes = b""):
        self.data, self.pos = data, 0

    def rest(self) -> bytes:
        return self.data[self.pos:]

    def readline(self) -> bytes | None:
        if self.pos >= len(self.data):
            return None
        end = self.data.find(b"\n", self.pos)
        end = len(self.data) if end < 0 else end + 1
        line, self.pos = self.data[self.pos:end], end
        return line


class Stream:
    """A stream written as it comes (boxer run's stdout or stderr): the caller keeps and shows it."""

    def __init__(self, write: Callable[[bytes], object]):
        self._write = write

    def write(self, data: bytes) -> None:
        if data:
            self._write(bytes(data))


class Null:
    def write(self, data: bytes) -> None:
        pass


class File:
    """An open file in the rootfs. Held open, so later renames or symlinks cannot redirect it."""

    def __init__(self, host: Path, append: bool):
        created = not host.exists()
        self.handle = open(host, "ab" if append else "wb")
        if created:
            os.fchmod(self.handle.fileno(), FILE_MODE)

    def write(self, data: bytes) -> None:
        self.handle.write(data)
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


Sink = Log | Buffer | Null | File | Stream
