"""What a run gives back besides its exit code: its output streams and the files under /out."""
from __future__ import annotations

import os
import posixpath
import stat
from pathlib import Path


class Sink:
    """Collects one output stream up to a cap, optionally echoing it to a host fd."""

    def __init__(self, cap: int | None, echo_fd: int | None):
        self.cap, self.echo_fd = cap, echo_fd
        self.chunks: list[bytes] = []
        self.size = 0
        self.truncated = False

    def __call__(self, data: bytes) -> int:
        room = len(data) if self.cap is None else max(0, self.cap - self.size)
        kept = data[:room]
        if len(kept) < len(data):
            self.truncated = True
        if kept:
            self.chunks.append(kept)
            self.size += len(kept)
            if self.echo_fd is not None:
                self._echo(kept)
        return len(data)  # the guest is told everything was written, so it does not retry

    def _echo(self, data: bytes) -> None:
        """Write through to the host fd; once that fails (a reader that went away: `| head`),
        stop echoing and keep collecting. This runs on Wasmtime's thread: it must not raise."""
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.echo_fd, view):]
        except OSError:
            self.echo_fd = None

    def value(self) -> bytes:
        return b"".join(self.chunks)


def collect(directory: Path, guest: str, budget: int) -> tuple[dict[str, bytes], bool]:
    """Regular files under the output directory, at most `budget` bytes in all (a guest can
    leave a sparse terabyte there). Symlinks are never followed. Returns (files, truncated)."""
    files: dict[str, bytes] = {}
    truncated = False
    for dirpath, _, filenames in os.walk(directory):
        for name in sorted(filenames):
            host = Path(dirpath) / name
            st = host.lstat()
            if not stat.S_ISREG(st.st_mode):
                continue
            if st.st_size > budget:
                truncated = True
                continue
            with open(host, "rb") as f:
                data = f.read(budget + 1)
            if len(data) > budget:
                truncated = True
                continue
            budget -= len(data)
            files[posixpath.join(guest, host.relative_to(directory).as_posix())] = data
    return files, truncated

