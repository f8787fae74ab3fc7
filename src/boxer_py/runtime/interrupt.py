"""Ctrl-C as a KeyboardInterrupt inside a CPython guest, as a native CPython gets it.

WASI has no signals. What CPython's SIGINT handler does is set a few words in its own
memory (the handler's "tripped" flag, the "a signal is pending" flags and the eval breaker),
after which the interpreter runs the Python-level handler (raising KeyboardInterrupt) at its
next check. `_thread.interrupt_main()` sets the very same words. So the words are found once
per module by a calibration run (`calibrate`): the guest sleeps, calls interrupt_main, and
sleeps again from C (no bytecode in between, so no check clears them), and the host compares
its memory at the two sleeps; exactly the words that went from 0 to 1 are CPython's. The
result is cached per module digest. A run then delivers Ctrl-C (`Interrupts.deliver`) by
setting those words from the guest's own thread: at an epoch tick (a busy guest), in a
sleep (cut short), or while the line editor waits for a line (the read then fails with
EINTR, and CPython's reader checks for signals as after a real one).

A module where calibration does not find exactly four such words gets no KeyboardInterrupt:
Ctrl-C stops its run instead (exit 130).
"""
from __future__ import annotations

import array
import json
import math
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path

import wasmtime

from boxer_py.image import imagefile
from boxer_py.runtime import reactor
from boxer_py.runtime.modcache import Loaded
from boxer_py.runtime.spec import INTERRUPT_EXIT_CODE, TRAP_EXIT_CODE, RunResult
from boxer_py.runtime.ticker import Ticker

WASI = "wasi_snapshot_preview1"
FLAG_WORDS = 4
CALIBRATION_TIMEOUT = 30.0  # seconds (a CPython start takes well under one)
CALIBRATION_MEMORY = 256 << 20
CALIBRATION = ("import _thread, functools, operator, time\n"
               "try:\n"
               "    list(map(operator.call, [functools.partial(time.sleep, 0.001), _thread.interrupt_main,\n"
               "                             functools.partial(time.sleep, 0.001)]))\n"
               "except KeyboardInterrupt:\n"
               "    pass\n")


@dataclass
class Interrupts:
    """One run's Ctrl-C: `request` is set by the CLI's signal watcher and cleared once
    delivered; `flags` are the guest's words to set (None: it cannot be interrupted, only
    stopped); `memory` is the run's, once instantiated."""

    request: threading.Event
    flags: tuple[int, ...] | None = None
    memory: wasmtime.Memory | None = field(default=None, repr=False)
    delivered: bool = False

    def deliverable(self) -> bool:
        return self.flags is not None and self.memory is not None

    def deliver(self, store: wasmtime.Store | wasmtime.Caller) -> bool:
        """Set the guest's flags if a Ctrl-C is pending; True if one was delivered."""
        if not self.request.is_set() or self.flags is None or self.memory is None:
            return False
        self.request.clear()
        try:
            for address in self.flags:
                self.memory.write(store, struct.pack("<i", 1), address)
        except (ValueError, IndexError, wasmtime.WasmtimeError):
            return False
        self.delivered = True
        return True


def for_run(request: threading.Event | None, engine: wasmtime.Engine, ticker: Ticker, loaded: Loaded, root: Path,
            argv0: str, cache_dir: Path, cpython: bool) -> Interrupts | None:
    """A run's Interrupts (None without a Ctrl-C to watch): with the flags of its module when
    it is the image's CPython."""
    if request is None:
        return None
    cache = cache_dir / "interrupt" / f"{loaded.digest}.json"
    return Interrupts(request, calibrate(engine, ticker, loaded.module, root, argv0, cache) if cpython else None)


def settle(interrupts: Interrupts | None, result: RunResult) -> None:
    """How a Ctrl-C shows in the result of a run that ended on an error (a trap): a guest it
    could not interrupt was stopped (130, "interrupted"); a CPython that did not catch its
    KeyboardInterrupt exits with 130, which WASI does not allow (Wasmtime's "invalid exit
    status"): 130 too, without a trap (CPython printed the traceback)."""
    if interrupts is None or not (interrupts.delivered or interrupts.request.is_set()):
        return
    if interrupts.delivered and result.trap and "exit status" in result.trap:
        result.exit_code, result.trap = INTERRUPT_EXIT_CODE, None
    elif not interrupts.deliverable() and interrupts.request.is_set() and result.exit_code == TRAP_EXIT_CODE:
        result.exit_code, result.trap = INTERRUPT_EXIT_CODE, "interrupted"


def load(cache: Path) -> tuple[int, ...] | None:
    """The cached calibration (None if there is none or it says the module has no flags)."""
    try:
        doc = json.loads(cache.read_text())
    except (OSError, ValueError):
        return None
    flags = doc.get("flags") if isinstance(doc, dict) else None
    if isinstance(flags, list) and len(flags) == FLAG_WORDS and all(isinstance(x, int) and x >= 0 for x in flags):
        return tuple(flags)
    return None


def calibrate(engine: wasmtime.Engine, ticker: Ticker, module: wasmtime.Module, root: Path, argv0: str,
              cache: Path) -> tuple[int, ...] | None:
    """Find the flags of `module` (a CPython) by a run with `root` read-only as /, and cache
    the answer (also a negative one, as an empty list). The image's code runs here, so the
    run is bounded like any guest's: CALIBRATION_TIMEOUT, CALIBRATION_MEMORY."""
    if cache.exists():
        return load(cache)
    memories: list[bytes] = []
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    reactor.define_host(linker, engine)
    i32 = wasmtime.ValType.i32()

    def poll_oneoff(caller: wasmtime.Caller, subs: int, events: int, count: int, count_out: int) -> int:
        memory = caller.get("memory")
        if not isinstance(memory, wasmtime.Memory) or count != 1 or len(memories) >= 2:
            return 28  # EINVAL: nothing else is expected of the calibration's guest
        userdata = struct.unpack("<Q", memory.read(caller, subs, subs + 8))[0]
        memories.append(bytes(memory.read(caller, 0, memory.data_len(caller))))
        memory.write(caller, struct.pack("<QHB5xQH6x", userdata, 0, 0, 0, 0), events)
        memory.write(caller, struct.pack("<I", 1), count_out)
        return 0

    linker.allow_shadowing = True
    linker.define_func(WASI, "poll_oneoff", wasmtime.FuncType([i32] * 4, [i32]), poll_oneoff, access_caller=True)
    store = wasmtime.Store(engine)
    store.set_limits(memory_size=CALIBRATION_MEMORY)
    store.set_epoch_deadline(math.ceil(CALIBRATION_TIMEOUT / Ticker.TICK))
    wasi = wasmtime.WasiConfig()
    wasi.argv = [argv0, "-c", CALIBRATION]
    wasi.preopen_dir(str(root), "/", False)
    store.set_wasi(wasi)
    flags: tuple[int, ...] | None = None
    try:
        start = reactor.entry(store, linker.instantiate(store, module).exports(store))
        if start is not None:
            with ticker:
                start()
    except (wasmtime.ExitTrap, wasmtime.Trap, wasmtime.WasmtimeError):
        pass
    if len(memories) == 2:
        flags = _flags(memories[0], memories[1])
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        imagefile.write(cache, json.dumps({"flags": list(flags or [])}).encode())
    except OSError:
        pass
    return flags


def _flags(before: bytes, after: bytes) -> tuple[int, ...] | None:
    size = min(len(before), len(after)) // 4 * 4
    a, b = array.array("i", before[:size]), array.array("i", after[:size])
    found = tuple(i * 4 for i in range(len(a)) if a[i] == 0 and b[i] == 1)
    return found if len(found) == FLAG_WORDS else None
