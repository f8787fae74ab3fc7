"""What a run gives back besides its exit code: its output streams and the files under /out."""
from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from pathlib import Path

from boxer_py.image import hostfs

STREAM_KEPT = 1 << 20  # bytes of a stream echoed as it comes that are also kept for the result
MAX_OUT_BYTES = 256 << 20  # /out files returned when no --max-output is set
MAX_OUT_ENTRIES = 10_000  # /out files returned at most
MAX_OUT_SCANNED = 100_000  # /out entries looked at at most
ENTRY_COST = 64  # bytes of the budget each /out file costs besides its name and content (its JSON)


class Sink:
    """Collects one output stream up to a cap, optionally echoing it to a host fd and handing
    it to a callback as it comes.

    With a cap, the first half of it and the last half are kept (the traceback at the end of
    a flood survives); `truncated` says the guest wrote more, `dropped` how many bytes are
    missing between the two. The head is echoed as it comes, the tail once the run has ended
    (`finish`): what is echoed is exactly what is kept. Without a cap, an echoing sink echoes
    everything but keeps only the first STREAM_KEPT bytes (`unkept` says it let more through
    unkept): a streaming run's output is the host fd's, and keeping all of it would let a
    guest fill the host's memory."""

    def __init__(self, cap: int | None, echo_fd: int | None, callback: Callable[[bytes], object] | None = None):
        self.cap, self.echo_fd, self.callback = cap, echo_fd, callback
        streaming = echo_fd is not None or callback is not None
        self.tail_size = 0 if cap is None else cap // 2
        self.keep = cap - self.tail_size if cap is not None else STREAM_KEPT if streaming else None
        self.chunks: list[bytes] = []
        self.tail = bytearray()
        self.size = 0  # bytes kept at the head
        self.written = 0  # bytes the guest wrote
        self.truncated = False
        self.unkept = False
        self.error: BaseException | None = None  # what the callback raised (it is not called again)

    def __call__(self, data: bytes) -> int:
        written = len(data)
        self.written += written
        if self.cap is not None and self.written > self.cap:
            self.truncated = True
        kept = data if self.keep is None else data[:max(0, self.keep - self.size)]
        if self.echo_fd is not None or self.callback is not None:
            self._show(bytes(data if self.cap is None else kept))
        if kept:
            self.chunks.append(bytes(kept))
            self.size += len(kept)
        rest = written - len(kept)
        if rest and self.cap is None:
            self.unkept = True
        elif rest and self.tail_size:
            self.tail += data[max(len(kept), written - self.tail_size):]
            del self.tail[:max(0, len(self.tail) - self.tail_size)]
        return written  # the guest is told everything was written, so it does not retry

    def _show(self, data: bytes) -> None:
        if not data:
            return
        if self.echo_fd is not None:
            self._echo(self.echo_fd, data)
        if self.callback is not None:
            try:
                self.callback(data)
            except BaseException as e:  # noqa: BLE001 - never into Wasmtime; the caller gets it after the run
                self.error, self.callback = e, None

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

    def finish(self) -> bytes:
        """The run has ended: show the kept tail (what came after the head); returns value()."""
        if self.tail:
            self._show(_utf8_start(bytes(self.tail)) if self.truncated else bytes(self.tail))
        return self.value()

    @property
    def dropped(self) -> int:
        """Bytes written but not in value()."""
        return self.written - len(self.value())

    def value(self) -> bytes:
        head = b"".join(self.chunks)
        if not self.truncated:
            return head + bytes(self.tail)
        return _utf8_end(head) + _utf8_start(bytes(self.tail))


def _utf8_end(data: bytes) -> bytes:
    """`data` without a UTF-8 sequence cut off at its end (so text stays text)."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte < 0x80:
            return data
        if byte >= 0xC0:  # a lead byte: is its sequence complete?
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return data if back >= need else data[:-back]
    return data


def _utf8_start(data: bytes) -> bytes:
    """`data` without the continuation bytes of a sequence cut off at its start."""
    skip = 0
    while skip < min(3, len(data)) and 0x80 <= data[skip] < 0xC0:
        skip += 1
    return data[skip:]


_CONTROL = re.compile(rb"[\x00-\x06\x0e-\x1a\x1c-\x1f\x7f]")


def is_text(data: bytes) -> bool:
    """UTF-8 without the control characters text does not have (NUL and most of C0; tabs,
    newlines, form feeds, backspace, bell and the escapes of terminal colours are text)."""
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return _CONTROL.search(data) is None


_TRACEBACK = b"Traceback (most recent call last):\n"
_EXCEPTION_LINE = re.compile(r"([A-Za-z_][\w.]*)(?:: (.*))?")
MAX_TRACEBACK = 64 << 10


def python_error(stderr: bytes) -> dict[str, str] | None:
    """The exception that ended a Python program, read from the last traceback it printed:
    {"type", "message", "traceback"}, or None if stderr ends with no traceback. The text is
    the guest's: bounded and only parsed."""
    start = stderr.rfind(_TRACEBACK)
    if start < 0:
        return None
    text = stderr[start:][-MAX_TRACEBACK:].decode(errors="replace")
    last = [line for line in text.splitlines() if line.strip() and not line.startswith((" ", "\t"))][-1:]
    match = _EXCEPTION_LINE.fullmatch(last[0]) if last else None
    if match is None or match.group(1) == "Traceback":
        return None
    return {"type": match.group(1), "message": match.group(2) or "", "traceback": text}


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
