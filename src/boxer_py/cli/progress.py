"""Build progress on stderr, as BuildKit prints it. `plain`: one line per event (`#5 [2/3] RUN
...`, the step's output lines as they come, `#5 DONE 1.2s` or `#5 CACHED`). `tty`: the same
lines, plus one status line at the bottom of the terminal that says what runs now and for how
long (and what pip is downloading), rewritten in place and erased before the next line.
`quiet`: nothing. `auto`: tty when stderr is a terminal, else plain."""
from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TextIO

_HEADER = re.compile(r"#(\d+) \[[^\]]*\] ")
_END = re.compile(r"#(\d+) (DONE|CACHED|ERROR)")


@dataclass
class BuildProgress:
    """Where the builder's progress goes: `line` for the log, `status` for the transient line
    (None when there is no terminal to show it on)."""
    line: Callable[[str], None]
    status: Callable[[str], None] | None = None


@dataclass
class _Terminal:
    stream: TextIO
    lock: threading.Lock = field(default_factory=threading.Lock)
    step: str = ""         # the running step's header
    started: float = 0.0
    detail: str = ""       # what the step said last on the status channel (pip's downloads)
    shown: bool = False    # a status line is on the screen

    def line(self, text: str) -> None:
        with self.lock:
            self._erase()
            self.stream.write(text + "\n")
            if _HEADER.match(text):
                self.step, self.started, self.detail = text, time.monotonic(), ""
            elif _END.match(text):
                self.step = ""
            self.stream.flush()

    def status(self, text: str) -> None:
        with self.lock:
            self.detail = text
            self._draw()

    def tick(self) -> None:
        with self.lock:
            if self.step and time.monotonic() - self.started >= 1:
                self._draw()

    def _draw(self) -> None:
        if not self.step:
            return
        width = _columns(self.stream) - 1
        text = f"{time.monotonic() - self.started:5.1f}s {self.step}" + (f"  {self.detail}" if self.detail else "")
        self.stream.write("\r\x1b[K" + text[:width])
        self.stream.flush()
        self.shown = True

    def _erase(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.shown = False

    def close(self) -> None:
        with self.lock:
            self._erase()
            self.stream.flush()


def _columns(stream: TextIO) -> int:
    import os

    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 80


@contextmanager
def build_progress(mode: str, stream: TextIO | None = None) -> Iterator[BuildProgress]:
    """The progress sinks for `mode` (auto, plain, tty or quiet), on stderr."""
    out: TextIO = stream or sys.stderr
    if mode == "quiet":
        yield BuildProgress(lambda _line: None)
        return
    if mode == "auto":
        mode = "tty" if out.isatty() else "plain"
    if mode == "plain":
        def show(text: str) -> None:
            out.write(text + "\n")
            out.flush()

        yield BuildProgress(show)
        return
    terminal = _Terminal(out)
    stop = threading.Event()

    def ticker() -> None:
        while not stop.wait(0.5):
            terminal.tick()

    thread = threading.Thread(target=ticker, name="boxer-progress", daemon=True)
    thread.start()
    try:
        yield BuildProgress(terminal.line, terminal.status)
    finally:
        stop.set()
        thread.join()
        terminal.close()


ACTIVE = ("Pushing", "Downloading")  # a blob's states that change as bytes go; the others are its last


def _size(n: float) -> str:
    """Docker's sizes: three significant digits, decimal units (12.3MB)."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.3g}{unit}"
        n /= 1000
    return ""


def bar(done: int, total: int, width: int = 50) -> str:
    """`[=====>     ]  12.3MB/45.6MB`, as docker push and pull draw a blob."""
    filled = min(width, done * width // total) if total > 0 else 0
    arrow = ("=" * (filled - 1) + ">") if filled else ""
    return f"[{arrow:<{width}}] {_size(done):>7}/{_size(total)}"


class TransferProgress:
    """Push and pull progress on stderr, as docker push/pull print it. On a terminal: one line
    per blob (`<digest>: Pushing [===>  ] 12.3MB/45.6MB`, then `Pushed`, `Layer already exists`,
    `Mounted from ...`, `Pull complete`), redrawn in place (at most ten times a second); other
    messages go above them. Piped: each blob's last state once, and the messages; nothing per chunk."""

    def __init__(self, stream: TextIO | None = None, tty: bool | None = None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.rows: dict[str, str] = {}    # blob -> its line, in the order they started
        self.states: dict[str, str] = {}  # blob -> its state word
        self.drawn = 0                    # lines of the block on the screen now
        self.last = 0.0
        self.lock = threading.Lock()

    def line(self, text: str) -> None:
        with self.lock:
            if not self.tty:
                self._write(text + "\n")
                return
            if self.rows and not any(state in ACTIVE for state in self.states.values()):
                self.rows, self.states, self.drawn = {}, {}, 0   # every blob is done: the block stays as it is
            self._write(self._up() + "\x1b[J" + text + "\n")
            self.drawn = 0
            self._draw()

    def blob(self, label: str, state: str, done: int, total: int) -> None:
        with self.lock:
            if not self.tty:
                if state not in ACTIVE and self.states.get(label) != state:
                    self._write(f"{label}: {state}\n")
                self.states[label] = state
                return
            changed = self.states.get(label) != state
            self.states[label] = state
            width = max(10, min(50, _columns(self.stream) - 40 - len(state)))   # the bar narrows to fit the line
            self.rows[label] = f"{label}: {state}" + (f" {bar(done, total, width)}" if state in ACTIVE else "")
            if changed or time.monotonic() - self.last >= 0.1:
                self._draw()

    def _up(self) -> str:
        return f"\x1b[{self.drawn}A" if self.drawn else ""

    def _draw(self) -> None:
        width = max(20, _columns(self.stream) - 1)   # a wrapped line would break the count of lines to go up
        text = self._up() + "".join("\r\x1b[K" + row[:width] + "\n" for row in self.rows.values())
        self.drawn = len(self.rows)
        self.last = time.monotonic()
        self._write(text)

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()
