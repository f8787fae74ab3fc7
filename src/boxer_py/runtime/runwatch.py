"""A run's disk quota: the writable layer's size, checked while the guest runs.

No host filesystem offers a per-directory quota to an unprivileged process, so the guest's
own thread measures its layer at epoch ticks: Wasmtime calls an epoch-deadline callback there,
the one place a single store can be stopped safely. wasmtime-py does not wrap that callback,
so it is bound through wasmtime-py's ctypes layer (wasmtime is pinned to one major version).

While a quota is watched the callback also enforces the run's deadline, since the store's
epoch deadline then comes back every tick instead of once at the timeout.

Size is what the guest could make the host read or store: a file's apparent size (a sparse
terabyte counts as a terabyte), at least 512 bytes per entry (so a million empty files count).
The check runs every CHECK_EVERY seconds of guest execution or less often on a large tree, so a
guest can overshoot by what it writes in that time, or in one write call (at most its memory).
"""
from __future__ import annotations

import ctypes
import threading
import time
import weakref
from pathlib import Path

import wasmtime
from wasmtime import _ffi as ffi

from boxer_py.image import hostfs
from boxer_py.runtime.interrupt import Interrupts
from boxer_py.runtime.wasi.clock import Deadlines

CHECK_EVERY = 0.05
ENTRY_MIN = 512
UNREADABLE = 1 << 62  # what a tree the quota cannot measure in full counts as
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.POINTER(ffi.wasmtime_context_t), ctypes.c_void_p,
                             ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_uint8))
_NO_FINALIZER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)()
_CONTINUE = 0


def disk_usage(root: Path) -> int:
    """Bytes under `root` as the quota counts them; symlinks are never followed. The walk is
    hostfs's: fd-relative, so no depth (past PATH_MAX, past any recursion limit) hides a
    subtree. A tree that cannot be read in full counts as UNREADABLE, over any quota."""
    try:
        return hostfs.tree_usage(root, ENTRY_MIN)
    except OSError:
        return UNREADABLE


class DiskWatch:
    """Stops one store when its writable layer grows past `limit` bytes beyond `base` (no
    limit: not measured), at its deadline (time.monotonic() seconds), or as soon as `cancel`
    is set (a cancelled call: the store is stopped at the next tick, within TICK). A Ctrl-C
    (`interrupts`) becomes a KeyboardInterrupt in a CPython guest, else a stop."""

    def __init__(self, root: Path, limit: int | None, deadline: float | None, deadlines: Deadlines,
                 cancel: threading.Event | None = None, base: int | None = None,
                 interrupts: Interrupts | None = None):
        """`base`: the layer's size the limit counts from (measured now if not given)."""
        self.root, self.limit, self.deadline, self.deadlines = root, limit, deadline, deadlines
        self.cancel, self.interrupts = cancel, interrupts
        # Weak: the store keeps this watch (its epoch callback) alive, and a strong reference
        # back would make a cycle that holds the guest's files open until a GC pass.
        self._store: weakref.ref[wasmtime.Store] | None = None
        if base is None:
            base = 0 if limit is None else disk_usage(root)
        self.base = 0 if base == UNREADABLE else base  # the copy just made: every entry of it counts
        self.full = False
        self._next = 0.0
        self._every = CHECK_EVERY
        self._callback = _CALLBACK(self._tick)  # kept alive as long as the watch (and its store)

    def install(self, store: wasmtime.Store) -> None:
        self._store = weakref.ref(store)
        ffi.wasmtime_store_epoch_deadline_callback(store.ptr(), self._callback, None, _NO_FINALIZER)
        store.set_epoch_deadline(1)

    def over(self) -> bool:
        """Measure now; True (and remembered) when the layer is over its quota."""
        started = time.monotonic()
        now = disk_usage(self.root)
        used = now if now == UNREADABLE else now - self.base
        self._every = max(CHECK_EVERY, 10 * (time.monotonic() - started))
        self.full = self.full or (self.limit is not None and used > self.limit)
        return self.full

    def every(self) -> float:
        """Seconds until the next measurement: CHECK_EVERY, or ten times the last one took."""
        return self._every

    def _tick(self, _context: object, _env: object, delta: ctypes._Pointer[ctypes.c_uint64],
              kind: ctypes._Pointer[ctypes.c_uint8]) -> int:
        try:
            now = time.monotonic()
            if self.cancel is not None and self.cancel.is_set():
                return _error("interrupted")
            if self.interrupts is not None and self.interrupts.request.is_set():
                if not self.interrupts.deliverable():
                    return _error("interrupted")
                store = self._store() if self._store is not None else None
                if store is not None:
                    self.interrupts.deliver(store)  # CPython raises KeyboardInterrupt at its next check
            if self.interrupts is not None and self.interrupts.resized.is_set() and self._store is not None:
                store = self._store()
                if store is not None:
                    self.interrupts.deliver_winch(store)  # the guest's SIGWINCH handler, if it has one
            if self.deadline is not None and now >= self.deadline:
                self.deadlines.expire()
                return _error("timed out")
            if self.limit is not None and now >= self._next:
                if self.over():
                    return _error(f"wrote more than the {self.limit}-byte disk limit")
                self._next = time.monotonic() + self._every
        except Exception:  # noqa: BLE001 - never let an exception cross into Wasmtime; keep going
            pass
        delta[0], kind[0] = 1, _CONTINUE
        return 0


def _error(message: str) -> int:
    error = ffi.wasmtime_error_new(ctypes.create_string_buffer(message.encode()))
    return ctypes.cast(error, ctypes.c_void_p).value or 0
