"""A snapshot baked into its module, as Wizer does: the resumable module whose data section
is the snapshot's memory, whose stack pointer starts where the snapshot's was and whose
memory starts at the snapshot's size. A plain instantiation is then the snapshot: Wasmtime
maps the module's memory image copy-on-write (from the compiled file, which the module cache
maps), so a run no longer copies the changed pages into a fresh memory (`snapshot.restore`),
and pages the run only reads are never copied at all.

The snapshot's bytes come from a guest's run: `check` bounds every number before a byte of
it goes into a module, and a module `bake` cannot read as wasm-ld lays CPython out (a
passive or non-constant data segment, an imported, shared or 64-bit memory) is refused
(ValueError): such runs keep restoring the snapshot.

Baking costs a full compile of the runtime, so the launcher bakes a snapshot only once it
is used again, in a background thread at the lowest priority, one compile at a time per
machine (a lock file), with an engine of its own that compiles on one thread; a run meanwhile
restores the snapshot as before and the next one finds the baked module in the cache.
"""
from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import wasmtime

from boxer_py.image.wasmbin import GLOBAL, assemble, read_sleb, read_uleb, sections, sleb, uleb
from boxer_py.runtime.modcache import Loaded, ModuleCache, new_engine
from boxer_py.runtime.preinit.snapshot import PAGE, Snapshot
from boxer_py.runtime.preinit.snapshot import check as snapshot_check

VERSION = 1                  # bumped when what `bake` writes changes (part of the cache key)
MEMORY, DATA, DATA_COUNT = 5, 11, 12
WASM_PAGE = 65536
MAX_MEMORY = 512 << 20       # a larger snapshot is not baked (the bake holds its memory twice)
I32_CONST, END = 0x41, 0x0B


def check(snapshot: Snapshot) -> None:
    """Raise ValueError unless `snapshot` (a guest's doing) is one to bake: its numbers within
    its memory (snapshot.check) and that memory at most MAX_MEMORY."""
    snapshot_check(snapshot)
    if snapshot.memory_size > MAX_MEMORY:
        raise ValueError(f"a snapshot of more than {MAX_MEMORY} bytes of memory is not baked")


def _const(payload: bytes, pos: int) -> tuple[int, int]:
    """The value of a constant expression `i32.const N end` at `pos`, and where it ends."""
    if payload[pos] != I32_CONST:
        raise ValueError("not a module bake knows: an initialiser is not an i32.const")
    value, pos = read_sleb(payload, pos + 1)
    if payload[pos] != END:
        raise ValueError("not a module bake knows: an initialiser is not an i32.const")
    return value, pos + 1


def _segments(payload: bytes) -> list[tuple[int, bytes]]:
    """(offset, bytes) of each segment of a data section: active segments of memory 0 only."""
    total, pos = read_uleb(payload, 0) if payload else (0, 0)
    found = []
    for _ in range(total):
        flags, pos = read_uleb(payload, pos)
        if flags == 2:
            memory, pos = read_uleb(payload, pos)
            if memory != 0:
                raise ValueError("not a module bake knows: a data segment of a second memory")
        elif flags != 0:
            raise ValueError("not a module bake knows: a passive data segment")
        offset, pos = _const(payload, pos)
        size, pos = read_uleb(payload, pos)
        found.append((offset & 0xFFFFFFFF, payload[pos:pos + size]))
        pos += size
    return found


def _memory(payload: bytes, pages: int) -> bytes:
    """The memory section with its one memory's minimum raised to `pages`."""
    total, pos = read_uleb(payload, 0)
    flags, pos = read_uleb(payload, pos)
    if total != 1 or flags not in (0, 1):
        raise ValueError("not a module bake knows: not one plain 32-bit memory")
    low, pos = read_uleb(payload, pos)
    high = read_uleb(payload, pos)[0] if flags else None
    if pages < low or (high is not None and pages > high):
        raise ValueError("the snapshot's memory does not fit the module's limits")
    return uleb(1) + uleb(flags) + uleb(pages) + (uleb(high) if high is not None else b"")


def _globals(payload: bytes, stack_pointer: int) -> bytes:
    """The global section with global 0 (wasm-ld's stack pointer) starting at `stack_pointer`."""
    total, pos = read_uleb(payload, 0)
    if total < 1 or payload[pos:pos + 2] != b"\x7f\x01":
        raise ValueError("not a module bake knows: global 0 is not a stack pointer")
    _, end = _const(payload, pos + 2)
    return payload[:pos + 2] + bytes([I32_CONST]) + sleb(stack_pointer) + bytes([END]) + payload[end:]


def bake(wasm: bytes, snapshot: Snapshot) -> bytes:
    """`wasm` (a resumable module) started as `snapshot` left it (see the module docstring)."""
    check(snapshot)
    parts = sections(wasm)
    payload = dict(parts)
    if MEMORY not in payload or GLOBAL not in payload:
        raise ValueError("not a module bake knows: it defines no memory or no globals")
    memory = bytearray(snapshot.memory_size)
    for offset, data in _segments(payload.get(DATA, b"")):
        if offset + len(data) > len(memory):
            raise ValueError("a data segment lies outside the snapshot's memory")
        memory[offset:offset + len(data)] = data
    source = 0
    for address, length in snapshot.pages:
        memory[address:address + length] = snapshot.data[source:source + length]
        source += length
    # One dense segment from the first to the last non-zero page: Wasmtime makes a
    # copy-on-write image of a memory whose data is dense (sparse data is written per run).
    start = (len(memory) - len(memory.lstrip(b"\0"))) // PAGE * PAGE
    end = len(memory.rstrip(b"\0"))
    segments = [] if end == 0 else [uleb(0) + bytes([I32_CONST]) + sleb(start) + bytes([END])
                                     + uleb(end - start) + bytes(memory[start:end])]
    edits = {
        MEMORY: _memory(payload[MEMORY], snapshot.memory_size // WASM_PAGE),
        GLOBAL: _globals(payload[GLOBAL], snapshot.stack_pointer),
        DATA: uleb(len(segments)) + b"".join(segments),
        DATA_COUNT: uleb(len(segments)),
    }
    out = [(sid, edits.get(sid, data)) for sid, data in parts]
    if DATA not in payload:
        out.append((DATA, edits[DATA]))
    return assemble(out)


@dataclass(frozen=True)
class Job:
    key: str                     # the baked module's key in `modules`
    modules: ModuleCache
    make: Callable[[], bytes]    # the baked module's bytes (reads the runtime, bakes)
    done: Callable[[Loaded], None]  # told the baked module, loaded from the cache


class Baker:
    """Bakes wanted snapshots in one background thread (see the module docstring)."""

    def __init__(self, locks: Path):
        self.locks = locks
        self._lock = threading.Lock()
        self._queue: list[Job] = []
        self._seen: set[str] = set()
        self._thread: threading.Thread | None = None

    def want(self, job: Job) -> None:
        """Bake `job` in the background unless it was already asked for in this process."""
        with self._lock:
            if job.key in self._seen:
                return
            self._seen.add(job.key)
            self._queue.append(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="boxer-bake", daemon=True)
                self._thread.start()

    def busy(self) -> bool:
        with self._lock:
            return self._thread is not None

    def wait(self) -> None:
        """Until every bake asked for so far is done (a served run, before its process ends)."""
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join()

    def _work(self) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)  # this thread only
        except OSError:
            pass
        while True:
            with self._lock:
                if not self._queue:
                    self._thread = None
                    return
                job = self._queue.pop(0)
            try:
                self._bake(job)
            except (OSError, ValueError, IndexError, wasmtime.WasmtimeError):
                pass  # not bakeable: its runs restore the snapshot, as before

    def _bake(self, job: Job) -> None:
        self.locks.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.locks / "bake.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # another process is baking: a later run finds its module or asks again
            if job.modules.cached(job.key) is None:
                engine = new_engine(job.modules.stack, parallel=False, epochs=job.modules.epochs)  # one core: runs go on
                job.modules.store(job.key, wasmtime.Module(engine, job.make()))
            loaded = job.modules.cached(job.key)
            if loaded is not None:
                job.done(loaded)
        finally:
            os.close(fd)
