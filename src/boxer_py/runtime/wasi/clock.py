"""WASI's clocks and sleep (`clock_time_get`, `poll_oneoff`), served by boxer so a timeout
can end a guest that sleeps.

Wasmtime's epoch interruption stops guest code, not a guest blocked in the host: its own
`poll_oneoff` sleeps the whole requested time in Rust, out of reach (`time.sleep(600)` under
a 1 s timeout would hold the caller for ten minutes). Here the sleep happens in Python and
never past the calling run's deadline; a sleep cut short raises `Expired`, which the launcher
reports as a timeout. The guest's monotonic clock is this process's, so absolute-time sleeps
(CPython's `time.sleep` uses them) mean the same thing on both sides.

Subscriptions to file descriptors report ready at once: a run's descriptors are regular
files, directories and captured stdio, which are always ready.
"""
from __future__ import annotations

import struct
import threading
import time

import wasmtime

from boxer_py.runtime.interrupt import Interrupts

WASI = "wasi_snapshot_preview1"
SUBSCRIPTION_SIZE = 48
CLOCK, FD_READ, FD_WRITE = 0, 1, 2
ABSTIME = 1
REALTIME, MONOTONIC = 0, 1
SUCCESS, FAULT, INVAL, NOTSUP = 0, 21, 28, 58
POLL = 0.05  # seconds: how soon a sleeping guest sees a Ctrl-C
MAX_SUBSCRIPTIONS = 4096  # each is parsed in Python, out of the deadline's reach; real guests use a few


class Expired(Exception):
    """A guest asked to sleep past its run's deadline (or its run was cancelled meanwhile)."""


class Deadlines:
    """The deadline (time.monotonic() seconds) of the run executing on each thread."""

    def __init__(self) -> None:
        self._local = threading.local()

    def set(self, deadline: float | None, cancel: threading.Event | None = None,
            interrupts: Interrupts | None = None) -> None:
        self._local.deadline, self._local.expired, self._local.cancel = deadline, False, cancel
        self._local.interrupts = interrupts

    def get(self) -> float | None:
        return getattr(self._local, "deadline", None)

    def cancel(self) -> threading.Event | None:
        """Set when the run on this thread is to stop now (a sleep ends at once)."""
        return getattr(self._local, "cancel", None)

    def interrupts(self) -> Interrupts | None:
        """The run's Ctrl-C (a sleep is cut short, then CPython raises KeyboardInterrupt)."""
        return getattr(self._local, "interrupts", None)

    def expire(self) -> None:
        self._local.expired = True

    @property
    def expired(self) -> bool:
        return getattr(self._local, "expired", False)


def read_clock(clock: int) -> int | None:
    if clock == REALTIME:
        return time.time_ns()
    if clock == MONOTONIC:
        return time.monotonic_ns()
    return None  # CPU-time clocks: the host's would leak what else this process does


def clock_wait(raw: bytes | bytearray, base: int) -> int | None:
    """The nanoseconds from now that the clock subscription at `base` of `raw` waits (an
    absolute one less its clock's time, at least 0); None for a clock read_clock does not serve."""
    clock, timeout, _precision, flags = struct.unpack_from("<I4xQQH", raw, base + 16)
    if flags & ABSTIME:
        now = read_clock(clock)
        if now is None:
            return None
        return max(0, timeout - now)
    return timeout


def event(userdata: int, error: int, tag: int, nbytes: int = 0) -> bytes:
    """One WASI poll event: its subscription's userdata, an errno, the subscription's type and,
    for a descriptor, the bytes ready (0: unknown)."""
    return struct.pack("<QHB5xQH6x", userdata, error, tag, nbytes, 0)


def define(linker: wasmtime.Linker, deadlines: Deadlines) -> None:
    """Replace the two WASI functions in a linker that already has the rest of WASI."""
    i32, i64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()

    def clock_time_get(caller: wasmtime.Caller, clock: int, _precision: int, out: int) -> int:
        now = read_clock(clock)
        if now is None:
            return NOTSUP
        return _write(caller, out, struct.pack("<Q", now))

    def poll_oneoff(caller: wasmtime.Caller, subs: int, events: int, count: int, count_out: int) -> int:
        if count == 0 or count > MAX_SUBSCRIPTIONS:
            return INVAL
        memory = _memory(caller)
        try:
            raw = memory.read(caller, subs, subs + count * SUBSCRIPTION_SIZE)
        except (ValueError, IndexError, wasmtime.WasmtimeError):
            return FAULT
        ready: list[bytes] = []
        wake: tuple[int, int] | None = None
        for i in range(count):
            base = i * SUBSCRIPTION_SIZE
            userdata, tag = struct.unpack_from("<QB", raw, base)
            if tag == CLOCK:
                wait = clock_wait(raw, base)
                if wait is None:
                    ready.append(event(userdata, NOTSUP, CLOCK))
                elif wake is None or wait < wake[0]:
                    wake = (wait, userdata)
            elif tag in (FD_READ, FD_WRITE):
                ready.append(event(userdata, SUCCESS, tag))
            else:
                return INVAL
        if not ready and wake is not None:
            sleep(wake[0] / 1e9, deadlines, caller)
            ready.append(event(wake[1], SUCCESS, CLOCK))
        return _write(caller, events, b"".join(ready)) or _write(caller, count_out, struct.pack("<I", len(ready)))

    linker.allow_shadowing = True
    linker.define_func(WASI, "clock_time_get", wasmtime.FuncType([i32, i64, i32], [i32]), clock_time_get,
                       access_caller=True)
    linker.define_func(WASI, "poll_oneoff", wasmtime.FuncType([i32, i32, i32, i32], [i32]), poll_oneoff,
                       access_caller=True)
    linker.allow_shadowing = False


def sleep(seconds: float, deadlines: Deadlines, caller: wasmtime.Caller | None = None) -> None:
    """Sleep for the guest, up to its run's deadline (then Expired). A cancel ends the sleep
    (Expired: the launcher sees the cancel and reports an interruption); so does a Ctrl-C,
    which returns early once delivered (CPython then raises KeyboardInterrupt). A terminal
    resize is delivered too, but the sleep goes on: the guest's SIGWINCH handler runs when it
    ends (a native sleep would run it at once and sleep on, PEP 475, but wasi-libc's
    clock_nanosleep turns an EINTR into ENOTSUP, so a sleep cannot be interrupted and resumed)."""
    deadline, cancel, interrupts = deadlines.get(), deadlines.cancel(), deadlines.interrupts()
    end = time.monotonic() + seconds
    if deadline is not None and end > deadline:
        end = deadline
    while (left := end - time.monotonic()) > 0:
        if cancel is None and interrupts is None:
            time.sleep(min(left, 3600.0))
            continue
        if cancel is not None:
            if cancel.wait(min(left, POLL)):
                raise Expired()
        else:
            time.sleep(min(left, POLL))
        if interrupts is not None and interrupts.request.is_set():
            if caller is not None and interrupts.deliver(caller):
                return
            raise Expired()  # not a CPython it can interrupt: the launcher stops the run
        if interrupts is not None and caller is not None and interrupts.resized.is_set():
            interrupts.deliver_winch(caller)
    if deadline is not None and end >= deadline and time.monotonic() >= deadline:
        deadlines.expire()
        raise Expired()


def _memory(caller: wasmtime.Caller) -> wasmtime.Memory:
    """The guest's exported memory; without one (or with an export of another kind by that
    name), a trap, as Wasmtime's own WASI functions give."""
    memory = caller.get("memory")
    if not isinstance(memory, wasmtime.Memory):
        raise wasmtime.Trap("missing required memory export")
    return memory


def _write(caller: wasmtime.Caller, offset: int, data: bytes) -> int:
    memory = _memory(caller)
    try:
        memory.write(caller, data, offset)
    except (ValueError, IndexError, wasmtime.WasmtimeError):
        return FAULT
    return SUCCESS
