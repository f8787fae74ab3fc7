"""What a run gives back besides its exit code: its output streams and the files under /out."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from boxer_py.image import hostfs

STREAM_KEPT = 1 << 20  # bytes of a stream echoed as it comes that are also kept for the result
MAX_OUT_ENTRIES = 10_000  # /out files returned at most
MAX_OUT_SCANNED = 100_000  # /out entries looked at at most
ENTRY_COST = 64  # bytes of the budget each /out file costs besides its name and content (its JSON)


class Sink:
    """Collects one output stream up to a cap, optionally echoing it to a host fd.

    With a cap, at most the cap is echoed and kept (`truncated` says the guest wrote more).
    Without one, an echoing sink echoes everything but keeps only the first STREAM_KEPT bytes
    (`dropped` says it let more through unkept): a streaming run's output is the host fd's,
    and keeping all of it would let a guest fill the host's memory."""

    def __init__(self, cap: int | None, echo_fd: int | None):
        self.cap, self.echo_fd = cap, echo_fd
        self.keep = cap if cap is not None or echo_fd is None else STREAM_KEPT
        self.chunks: list[bytes] = []
        self.size = 0  # bytes kept
        self.truncated = False
        self.dropped = False

    def __call__(self, data: bytes) -> int:
        written = len(data)
        shown = data
        if self.cap is not None:
            shown = data[:max(0, self.cap - self.size)]
            if len(shown) < written:
                self.truncated = True
        if shown and self.echo_fd is not None:
            self._echo(self.echo_fd, shown)
        kept = shown if self.keep is None else shown[:max(0, self.keep - self.size)]
        if len(kept) < len(shown):
            self.dropped = True
        if kept:
            self.chunks.append(bytes(kept))
            self.size += len(kept)
        return written  # the guest is told everything was written, so it does not retry

    def _echo(self, fd: int, data: bytes) -> None:
        """Write through to the host fd (`echo_fd`); once that fails (a reader that went away:
        `| head`), stop echoing and keep collecting. This runs on Wasmtime's thread: it must not
        raise."""
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(fd, view):]
        except OSError:
            self.echo_fd = None

    def value(self) -> bytes:
        return b"".join(self.chunks)


def safe_name(name: str) -> str:
    """A file name as valid UTF-8 text: bytes that are not UTF-8 shown as \\xNN escapes."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def collect(directory: Path, guest: str, budget: int, max_entries: int = MAX_OUT_ENTRIES,
            max_scanned: int = MAX_OUT_SCANNED) -> tuple[dict[str, bytes], bool]:
    """Regular files under the output directory, `budget` bytes in all: each file costs its
    size, its name's and ENTRY_COST (a guest can leave a sparse terabyte there, or a million
    empty files with long names). At most `max_entries` files are returned and `max_scanned`
    entries looked at; the walk is hostfs's (any depth, no symlink followed, no path string).
    Names that are not UTF-8 are escaped (safe_name). Returns (files, truncated)."""
    files: dict[str, bytes] = {}
    truncated = False
    scanned = 0
    prefix = len(guest.rstrip("/").encode()) + 1

    class Full(Exception):
        pass

    def visit(w: hostfs.Walker, name: str, st: os.stat_result) -> bool:
        nonlocal budget, truncated, scanned
        scanned += 1
        if scanned > max_scanned or len(files) >= max_entries or budget < ENTRY_COST:
            truncated = True
            raise Full
        if stat.S_ISDIR(st.st_mode):
            return True
        if not stat.S_ISREG(st.st_mode):
            return False
        cost = ENTRY_COST + prefix + w.length(name) + st.st_size
        if cost > budget:
            truncated = True
            return False
        try:
            fd = os.open(name, hostfs.FILE_FLAGS, dir_fd=w.fd)
        except OSError:
            truncated = True
            return False
        with open(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return False
            data = f.read(st.st_size + 1)
        path = safe_name(guest.rstrip("/") + "/" + w.path(name))
        cost = ENTRY_COST + len(path.encode()) + len(data)
        if cost > budget:
            truncated = True
            return False
        budget -= cost
        files[path] = data
        return False

    def failed(_error: OSError) -> None:
        nonlocal truncated
        truncated = True

    try:
        hostfs.walk(directory, visit, onerror=failed)
    except Full:
        pass
    except OSError:
        truncated = True
    return files, truncated
