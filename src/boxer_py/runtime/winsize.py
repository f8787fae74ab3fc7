"""A `boxer run -t` guest's window size, followed as `docker run -t` follows it.

WASI preview 1 has no call for a terminal's size, and CPython for WASI no
os.get_terminal_size. So the launcher gives such a run one more read-only preopen,
`/.boxer/tty`: a directory of its own holding one file, `size` ("COLUMNS LINES"), named to
the guest by the variable BOXER_TTY, which boxer's sitecustomize reads for
os.get_terminal_size. When the host's window changes (the CLI sees SIGWINCH and sets the
run's `resize`), a thread here rewrites the file (beside, then renamed over: a reader never
sees half of it) and tells the guest's thread, which runs the guest's SIGWINCH handler if it
has one (interrupt.py). The size is all the host tells: no name, descriptor or path of its own.
"""
from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

from boxer_py.image.hostfs import remove_tree
from boxer_py.runtime.spec import Mount

GUEST_DIR = "/.boxer/tty"
VARIABLE = "BOXER_TTY"
WAKE = 0.5  # seconds: how often the follower looks whether its run is over


class WindowSize:
    """The size file of one run, for the terminal on host descriptor `fd`."""

    def __init__(self, runs: Path, fd: int):
        self.fd = fd
        runs.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}.tty-", dir=runs))  # pid first: sweep_dead
        self._over = threading.Event()
        self._thread: threading.Thread | None = None
        self.write()

    def mount(self) -> Mount:
        return Mount(self.dir, GUEST_DIR, read_only=True)

    def env(self) -> dict[str, str]:
        return {VARIABLE: f"{GUEST_DIR}/size"}

    def write(self) -> None:
        try:
            size = os.get_terminal_size(self.fd)
        except OSError:
            return  # no longer a terminal: the guest keeps the size it had
        beside = self.dir / ".size"
        beside.write_text(f"{size.columns} {size.lines}\n")
        os.replace(beside, self.dir / "size")

    def follow(self, resize: threading.Event, resized: threading.Event | None) -> None:
        """Until close(): rewrite the file each time `resize` is set, then set `resized`."""
        def loop() -> None:
            while not self._over.is_set():
                if resize.wait(WAKE) and not self._over.is_set():
                    resize.clear()
                    self.write()
                    if resized is not None:
                        resized.set()

        self._thread = threading.Thread(target=loop, name="boxer-winsize", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._over.set()
        if self._thread is not None:
            self._thread.join()
        remove_tree(self.dir)
