"""Backstops of a run's timeout for a guest blocked in the host, where epoch interruption
cannot reach it: the CLI's (arm: end the process) and the API's (Backstop), and stdin_path,
which keeps a run from blocking before either is armed."""
from __future__ import annotations

import _thread
import json
import os
import re
import signal
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

from boxer_py.errors import RunError
from boxer_py.image import hostfs
from boxer_py.runtime.spec import TIMEOUT_EXIT_CODE, RunResult


def arm(seconds: float, as_json: bool) -> None:
    """Epoch interruption stops guest code, not a guest blocked in the host (a long sleep):
    past the deadline plus a grace second, the whole process ends with the timeout code."""

    def expire() -> None:
        if as_json:
            os.write(1, (json.dumps(RunResult(TIMEOUT_EXIT_CODE, timed_out=True,
                                              trap=f"timed out after {seconds - 1:g}s (blocked)").to_json()) + "\n").encode())
        else:
            os.write(2, f"boxer: timed out after {seconds - 1:g}s (blocked)\n".encode())
        os._exit(TIMEOUT_EXIT_CODE)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()


GRACE = 1.0  # seconds past a run's deadline before the backstop steps in
_SCAN = 10_000  # entries of each mount the backstop looks at per pass


class Backstop:
    """The in-process counterpart of arm(), for runs that must not end the process (the API,
    MCP, the run server): epoch interruption cannot stop a guest blocked in the host, and the
    one host call a guest can block in for ever is opening a FIFO a host process left in a
    mount (a guest cannot make one, and an image cannot hold one). Past the deadline plus
    GRACE, and until the run is over, every FIFO in the run's mounts gets a partner opened
    for it (a reader kept and drained, a writer opened and closed), so each blocked open
    returns, the guest is back in Wasm, and its timeout ends it there."""

    def __init__(self, deadline: float, mounts: list[Path]):
        self.deadline, self.mounts = deadline, mounts
        self._over = threading.Event()
        self._held: dict[tuple[int, int], int] = {}
        self._thread = threading.Thread(target=self._watch, name="boxer-backstop", daemon=True)

    def __enter__(self) -> Backstop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._over.set()
        self._thread.join()
        for fd in self._held.values():
            os.close(fd)

    def _watch(self) -> None:
        if self._over.wait(max(0.0, self.deadline + GRACE - time.monotonic())):
            return
        while not self._over.is_set():
            for mount in self.mounts:
                try:
                    self._unblock(mount)
                except Exception:  # noqa: BLE001 - a backstop must not die of a mount's oddity
                    pass
            self._over.wait(0.05)

    def _unblock(self, mount: Path) -> None:
        seen = 0

        def visit(w: hostfs.Walker, name: str, st: os.stat_result) -> bool:
            nonlocal seen
            seen += 1
            if seen > _SCAN:
                raise StopIteration
            if stat.S_ISFIFO(st.st_mode):
                self._partner(w.fd, name, (st.st_dev, st.st_ino))
            return stat.S_ISDIR(st.st_mode)

        try:
            hostfs.walk(mount, visit, onerror=lambda e: None)
        except StopIteration:
            pass

    def _partner(self, dir_fd: int, name: str, key: tuple[int, int]) -> None:
        flags = os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
        if key not in self._held:
            self._held[key] = os.open(name, os.O_RDONLY | flags, dir_fd=dir_fd)  # a writer's open returns
        try:
            while os.read(self._held[key], 1 << 16):  # so a writer never fills the pipe and blocks
                pass
        except BlockingIOError:
            pass
        try:
            os.close(os.open(name, os.O_WRONLY | flags, dir_fd=dir_fd))  # a reader's open returns, then EOF
        except OSError:
            pass


def stdin_path(path: str) -> tuple[str, list[int]]:
    """What to give Wasmtime as a run's stdin file, checked without blocking: a regular file
    (named by a descriptor held here, so it cannot be swapped), /dev/null, or a pipe named by
    a descriptor of this very process (/dev/stdin, /dev/fd/N: `--stdin <(cmd)`). Anything
    else, a FIFO on disk above all, is refused: opening one blocks until a writer comes,
    before any timeout can run. Returns (path, descriptors to close once Wasmtime opened it:
    for a pipe, a writer held meanwhile, so that Wasmtime's open cannot wait for one)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise RunError(f"--stdin {path}: cannot read ({e.strerror or e})") from None
    st = os.fstat(fd)
    if stat.S_ISREG(st.st_mode):
        return f"/proc/self/fd/{fd}", [fd]
    if stat.S_ISCHR(st.st_mode) and st.st_rdev == os.stat(os.devnull).st_rdev:
        os.close(fd)
        return os.devnull, []
    match = re.fullmatch(r"/dev/(stdin)|/dev/fd/(\d+)|/proc/self/fd/(\d+)", path)
    if stat.S_ISFIFO(st.st_mode) and match:
        own = 0 if match.group(1) else int(match.group(2) or match.group(3))
        try:
            mine = os.fstat(own)
        except OSError:
            mine = None
        if mine is not None and (mine.st_dev, mine.st_ino) == (st.st_dev, st.st_ino):
            writer = os.open(f"/proc/self/fd/{fd}", os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            return f"/proc/self/fd/{fd}", [writer, fd]
    os.close(fd)
    kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a device" if stat.S_ISCHR(st.st_mode) or \
        stat.S_ISBLK(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file"
    raise RunError(f"--stdin {path}: is {kind}, which could block the run past its timeout "
                   "(give a regular file, or pipe it in with -i)")


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def cancel_on_signals(cancel: threading.Event, interrupt: threading.Event,
                      grace: float = GRACE, resize: threading.Event | None = None) -> Callable[[], int | None]:
    """Ctrl-C (SIGINT) sets `interrupt` (a KeyboardInterrupt in a CPython guest, else a stop),
    SIGTERM and SIGHUP set `cancel` (a stop); the launcher checks both at every epoch tick and
    in every sleep, instead of waiting for the guest to return to Python (a busy guest never
    would). Call from the main thread of a process that runs one guest (the CLI). Python runs
    a signal's handler only between bytecodes, so the signal comes through
    signal.set_wakeup_fd to a thread. A guest blocked in the host (reading stdin) cannot be
    reached in-process: if the signal is still pending `grace` seconds later, the process
    ends with 128+N, as a native program killed by the signal would. SIGWINCH sets `resize`
    if given (`run -t`: the guest follows the window, winsize.py). Returns a function that
    gives the last stopping signal that came (or None)."""
    read, write = os.pipe2(os.O_CLOEXEC)
    os.set_blocking(write, False)
    came: list[int] = []
    for signum in STOP_SIGNALS + ((signal.SIGWINCH,) if resize is not None else ()):
        signal.signal(signum, lambda *_: None)
    signal.set_wakeup_fd(write, warn_on_full_buffer=False)

    def expire(signum: int, pending: threading.Event) -> None:
        if pending.is_set():
            os._exit(128 + signum)

    def watch() -> None:
        while True:
            for signum in os.read(read, 16):
                if signum == signal.SIGWINCH and resize is not None:
                    resize.set()
                if signum not in STOP_SIGNALS:
                    continue
                pending = interrupt if signum == signal.SIGINT else cancel
                if signum != signal.SIGINT:
                    came.append(signum)
                pending.set()
                timer = threading.Timer(grace, expire, (signum, pending))
                timer.daemon = True
                timer.start()

    _thread.start_new_thread(watch, ())  # threading's start() would wait until it runs: signals queue in the pipe meanwhile
    return lambda: came[-1] if came else None
