"""A long step on a terminal (compiling a runtime, unpacking or loading an image): an elapsed-time
line on stderr, only when stderr is a terminal and the step takes more than about a second."""
from __future__ import annotations

import os
import threading
import time


class Progress:
    """A long step on a terminal: after `quiet` seconds, `boxer: WHAT... 12s` on stderr,
    updated in place every second, then `done in 47s`. Nothing when stderr is not a terminal
    (piped, a log) nor for a step that ends sooner."""

    def __init__(self, what: str, quiet: float = 1.0, fd: int = 2):
        self.what, self.quiet, self.fd = what, quiet, fd
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._shown = False
        self._started = time.monotonic()

    def __enter__(self) -> Progress:
        if os.isatty(self.fd):
            self._thread = threading.Thread(target=self._show, name="boxer-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        if self._shown:
            self._write(f"\rboxer: {self.what}... done in {time.monotonic() - self._started:.0f}s\x1b[K\n")

    def _show(self) -> None:
        if self._done.wait(self.quiet):
            return
        while not self._done.is_set():
            self._shown = True
            self._write(f"\rboxer: {self.what}... {time.monotonic() - self._started:.0f}s\x1b[K")
            self._done.wait(1.0)

    def _write(self, text: str) -> None:
        try:
            os.write(self.fd, text.encode())
        except OSError:
            pass
