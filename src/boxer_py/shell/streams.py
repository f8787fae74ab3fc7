"""Where a RUN command's output goes and where its input comes from.

The build log, a pipe's buffer, /dev/null and files of the rootfs are all sinks (`write`);
stdin is a byte string only `read` consumes. Pipelines are buffered: the left side finishes
before the right side reads.
"""
from __future__ import annotations

import os
from pathlib import Path

from boxer_py.shell.utilities.core import FILE_MODE


class Log:
    """The build log: stdout and stderr not redirected to files, in order."""

    def __init__(self, log: bytearray):
        self.log = log

    def write(self, data: bytes) -> None:
        self.log += data


class Buffer:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
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


Sink = Log | Buffer | Null | File
