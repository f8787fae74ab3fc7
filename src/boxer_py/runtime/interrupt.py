"""Ctrl-C as a KeyboardInterrupt inside a CPython guest, as a native CPython gets it.

WASI has no signals. What CPython's SIGINT handler does is set a few words in its own
memory (the handler's "tripped" flag, the "a signal is pending" flags and the eval breaker),
after which the interpreter runs the Python-level handler (raising KeyboardInterrupt) at its
next check. `_thread.interrupt_main()` sets the very same words. So the words are found once
per module by a calibration run (`calibrate`): the guest sleeps, calls interrupt_main, and
sleeps again from C (no bytecode in between, so no check clears them), and the host compares
its memory at the two sleeps: CPython's words are those that gained one bit, lost no other,
and were back to their first value once the KeyboardInterrupt was handled (the next sleep). (A
word that merely lost the bit again is not enough: before 3.12 None's reference count changes,
and the calls' results, kept in a list, add two to it at the second sleep, so a count of 4n+1
gains one bit there and loses it when the list goes, one lower than it was; in the 3.11 runtime
built with ThinLTO it was such a count, and the calibration found five words and gave up.) On 3.11 and
3.12 they are four words that go from 0 to 1 (the handler's "tripped", `is_tripped`,
`signals_pending` and the eval breaker); on 3.13 three: the two "tripped" words go from 0 to
1 and the main thread's eval breaker, a word of flag bits with the instrumentation version
above them, gains `_PY_SIGNALS_PENDING_BIT` (2). The result, (word, bit) pairs, is cached
per module digest, in the order CPython's handler sets them (`_in_order`). A run then delivers Ctrl-C (`Interrupts.deliver`) by OR-ing those bits
into those words from the guest's own thread (it is stopped in the host meanwhile): at an epoch tick (a busy guest), in a
sleep (cut short), or while the line editor waits for a line (the read then fails with
EINTR, and CPython's reader checks for signals as after a real one).

A module where calibration does not find three or four such words gets no KeyboardInterrupt:
Ctrl-C stops its run instead (exit 130). Other words of a busy runtime may go from 0 to 1
between two sleeps now and then, so a calibration that does not find what it expects is run
again (up to CALIBRATION_RUNS times) before a module is said to have none. A word must also
lie at a fixed address: each calibration is run a second time with a longer command line,
which moves what CPython allocates before its interpreter, and only the words both runs find
are kept. 3.9 allocates its interpreter state, eval breaker included, on the heap (3.11 keeps
the main one static): its three static words remain, which its eval loop also polls on WASI
(toolchain/cpython patch 18). Before 3.10 the SIGWINCH part is left out (interrupt_main takes
no signal there), and SIGINT's "tripped" word is the one whose handlers' array ends at another
of its words, `is_tripped` (`_tripped`).

A terminal's resize (SIGWINCH, `boxer run -t`) reaches a guest's `signal.SIGWINCH` handler the
same way. The calibration goes on with `_thread.interrupt_main(signal.SIGWINCH)` under a
Python handler: CPython keeps one {tripped, handler} pair of words per signal, so SIGWINCH's
"tripped" word is SIGINT's plus 26 pairs: it must go from 0 to 1 and the words shared with
SIGINT gain their bits again. The handler word after it is also noted for SIG_DFL and SIG_IGN (CPython's
small ints, at fixed addresses): a resize is delivered only when the guest has a handler of its
own there (for another value CPython would report "Signal 28 ignored due to race condition").
"""
from __future__ import annotations

import array
import ctypes
import json
import math
import struct
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import wasmtime

from boxer_py.image import imagefile
from boxer_py.runtime import reactor
from boxer_py.runtime.modcache import Loaded
from boxer_py.runtime.spec import INTERRUPT_EXIT_CODE, TRAP_EXIT_CODE, RunResult
from boxer_py.runtime.ticker import Ticker

WASI = "wasi_snapshot_preview1"
FLAG_WORDS = (3, 4)  # CPython 3.13 and 3.9 (its static ones), 3.11/3.12
CALIBRATION_TIMEOUT = 30.0  # seconds (a CPython start takes well under one)
CALIBRATION_MEMORY = 256 << 20
# operator.call came in 3.11 (methodcaller calls from C as well); interrupt_main(signum) in 3.10
CALIBRATION = ("import _thread, functools, operator, signal, sys, time\n"
               "call = getattr(operator, 'call', operator.methodcaller('__call__'))\n"
               "nap = functools.partial(time.sleep, 0.001)\n"
               "try:\n"
               "    list(map(call, [nap, _thread.interrupt_main, nap]))\n"
               "except KeyboardInterrupt:\n"
               "    pass\n"
               "signal.signal(signal.SIGWINCH, signal.SIG_IGN)\n"
               "nap()\n"
               "if sys.version_info >= (3, 10):\n"
               "    signal.signal(signal.SIGWINCH, lambda *_: None)\n"
               "    list(map(call, [nap, functools.partial(_thread.interrupt_main, signal.SIGWINCH), nap]))\n")
NAPS = 5  # the calibration's sleeps: before and after SIGINT, SIG_IGN set, before and after SIGWINCH
CALIBRATION_RUNS = 3
MOVE = 4096  # bytes the second run's command line is longer by (a comment), to move the heap
# part of the cache's name: 1 had no SIGWINCH, 2 only words set to 1 (no 3.13), 3 in address order, 4 took a
# word that only lost its bit again for a flag, 5 kept words that move with the command line, found none on 3.9
CALIBRATION_VERSION = 6
SIGINT, SIGWINCH, HANDLER_PAIR, NSIG = 2, 28, 8, 65  # wasi-libc's numbers; CPython's {tripped, func} on wasm32


Flag = tuple[int, int]  # a word's address in the guest's memory and the bits to OR into it


def _set(memory: wasmtime.Memory, store: wasmtime.Store | wasmtime.Caller, flags: tuple[Flag, ...]) -> None:
    for address, bits in flags:
        word = struct.unpack("<I", memory.read(store, address, address + 4))[0]
        memory.write(store, struct.pack("<I", word | bits), address)


def _set_raw(raw: tuple[int, int], flags: tuple[Flag, ...]) -> bool:
    """_set through the memory's host address (flags outside the memory are not written)."""
    base, size = raw
    if not all(0 <= address <= size - 4 for address, _ in flags):
        return False
    for address, bits in flags:
        word = ctypes.c_uint32.from_address(base + address)
        word.value |= bits
    return True


@dataclass(frozen=True)
class Winch:
    """Where a CPython keeps SIGWINCH: the words to set, its handler word and that word's
    values when the guest has no handler of its own (0, SIG_DFL, SIG_IGN)."""
    flags: tuple[Flag, ...]
    handler: int
    unhandled: tuple[int, ...]


@dataclass
class Interrupts:
    """One run's Ctrl-C: `request` is set by the CLI's signal watcher and cleared once
    delivered; `flags` are the guest's words to set (None: it cannot be interrupted, only
    stopped); `memory` is the run's, once instantiated."""

    request: threading.Event
    flags: tuple[Flag, ...] | None = None
    memory: wasmtime.Memory | None = field(default=None, repr=False)
    delivered: bool = False
    winch: Winch | None = None
    resized: threading.Event = field(default_factory=threading.Event)  # set when the terminal's size changed
    # The memory's host address and size, for deliver_async (a run without epochs): a 32-bit
    # memory never moves (Wasmtime reserves its whole 4 GiB up front).
    raw: tuple[int, int] | None = None

    def deliver_async(self) -> bool:
        """deliver() from another thread while the guest runs, as a native signal handler sets
        these words while the interpreter runs; True if a Ctrl-C was delivered."""
        if not self.request.is_set() or self.flags is None or self.raw is None:
            return False
        self.request.clear()
        self.delivered = _set_raw(self.raw, self.flags) or self.delivered
        return True

    def pending_async(self) -> bool:
        """Whether the Ctrl-C deliver_async set is still in the guest's words: CPython clears
        them when it checks for signals, so a guest that has not is not running its interpreter."""
        if self.flags is None or self.raw is None:
            return False
        base, size = self.raw
        return all(0 <= address <= size - 4 and ctypes.c_uint32.from_address(base + address).value & bits
                   for address, bits in self.flags)

    def deliver_winch_async(self) -> bool:
        """deliver_winch() from another thread (see deliver_async)."""
        if not self.resized.is_set() or self.winch is None or self.raw is None:
            return False
        self.resized.clear()
        base, size = self.raw
        if not 0 <= self.winch.handler <= size - 4:
            return False
        if ctypes.c_uint32.from_address(base + self.winch.handler).value in self.winch.unhandled:
            return False
        return _set_raw(self.raw, self.winch.flags)

    def deliver_winch(self, store: wasmtime.Store | wasmtime.Caller) -> bool:
        """Run the guest's SIGWINCH handler at its next check if the terminal was resized
        and it has one; True if it was told."""
        if not self.resized.is_set() or self.winch is None or self.memory is None:
            return False
        self.resized.clear()
        try:
            handler = struct.unpack("<I", self.memory.read(store, self.winch.handler, self.winch.handler + 4))[0]
            if handler in self.winch.unhandled:
                return False
            _set(self.memory, store, self.winch.flags)
        except (ValueError, IndexError, struct.error, wasmtime.WasmtimeError):
            return False
        return True

    def deliverable(self) -> bool:
        return self.flags is not None and self.memory is not None

    def deliver(self, store: wasmtime.Store | wasmtime.Caller) -> bool:
        """Set the guest's flags if a Ctrl-C is pending; True if one was delivered."""
        if not self.request.is_set() or self.flags is None or self.memory is None:
            return False
        self.request.clear()
        try:
            _set(self.memory, store, self.flags)
        except (ValueError, IndexError, struct.error, wasmtime.WasmtimeError):
            return False
        self.delivered = True
        return True


def for_run(request: threading.Event | None, engine: wasmtime.Engine, ticker: Ticker, loaded: Loaded, root: Path,
            argv0: str, cache_dir: Path, cpython: bool,
            guard: Callable[[], AbstractContextManager[object]] = nullcontext) -> Interrupts | None:
    """A run's Interrupts (None without a Ctrl-C to watch): with the flags of its module when
    it is the image's CPython. `guard` bounds a calibration run (Engine.guard); a calibration
    found before is read from its file alone, once."""
    if request is None:
        return None
    if not cpython:
        return Interrupts(request)
    cache = cache_dir / "interrupt" / f"{loaded.digest}-{CALIBRATION_VERSION}.json"
    try:
        found = load(cache)
    except OSError:  # not calibrated yet
        with guard():
            found = calibrate(engine, ticker, loaded.module, root, argv0, cache)
    return Interrupts(request, found.flags, winch=found.winch)


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


def _pairs(doc: object) -> tuple[Flag, ...] | None:
    """(word, bits) pairs from a cache's JSON, if it is a list of FLAG_WORDS of them."""
    if not isinstance(doc, list) or len(doc) not in FLAG_WORDS:
        return None
    pairs = tuple(tuple(x) for x in doc if isinstance(x, list) and len(x) == 2)
    if len(pairs) != len(doc) or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1 << 32
                                         for pair in pairs for v in pair):
        return None
    return pairs


@dataclass(frozen=True)
class Calibration:
    """What a calibration found: CPython's SIGINT flags (None: none found) and, with them, its
    SIGWINCH (None: none found)."""

    flags: tuple[Flag, ...] | None = None
    winch: Winch | None = None


def load(cache: Path) -> Calibration:
    """The cached calibration, read once (it is on every run's start); OSError if there is
    none yet, and no flags if the file is not one this module wrote."""
    try:
        doc = json.loads(cache.read_bytes())
    except ValueError:
        return Calibration()
    flags = _pairs(doc.get("flags") if isinstance(doc, dict) else None)
    return Calibration(flags, _winch_of(doc) if flags else None)


def _winch_of(calibration: object) -> Winch | None:
    """The SIGWINCH of a calibration file's JSON (None if it has none)."""
    if not isinstance(calibration, dict):
        return None
    try:
        doc = calibration["winch"]
        flags = _pairs(doc["flags"])
        winch = Winch(flags or (), doc["handler"], tuple(doc["unhandled"]))
    except (ValueError, AttributeError, KeyError, TypeError):
        return None
    numbers = (winch.handler, *winch.unhandled)
    if flags is None or not all(isinstance(x, int) and x >= 0 for x in numbers):
        return None
    return winch


def calibrate(engine: wasmtime.Engine, ticker: Ticker, module: wasmtime.Module, root: Path, argv0: str,
              cache: Path) -> Calibration:
    """Find the flags of `module` (a CPython) by a run with `root` read-only as /, and cache
    the answer (also a negative one, as an empty list). The image's code runs here, so the
    run is bounded like any guest's: CALIBRATION_TIMEOUT, CALIBRATION_MEMORY."""
    flags: tuple[Flag, ...] | None = None
    winch: Winch | None = None
    for _ in range(CALIBRATION_RUNS):
        memories = _calibration_run(engine, ticker, module, root, argv0)
        found = _flags(*memories[:3]) if len(memories) >= 3 else None
        if found is None:
            continue
        moved = _calibration_run(engine, ticker, module, root, argv0, MOVE)
        also = _flags(*moved[:3]) if len(moved) >= 3 else None
        found = tuple(f for f in found if f in (also or ()))  # at fixed addresses only
        if len(found) not in FLAG_WORDS:
            continue
        flags, winch = found, _winch(found, memories) if len(memories) == NAPS else None
        if winch is not None:
            flags = _in_order(flags, winch.flags[0][0] - (SIGWINCH - SIGINT) * HANDLER_PAIR)
            break
        if len(memories) == NAPS - 2:  # no SIGWINCH part (before 3.10): SIGINT's words alone
            tripped = _tripped(flags)
            flags = None if tripped is None else _in_order(flags, tripped)
            if flags is not None:
                break
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        doc: dict[str, object] = {"flags": [list(f) for f in flags or ()]}
        if winch is not None:
            doc["winch"] = {"flags": [list(f) for f in winch.flags], "handler": winch.handler, "unhandled": list(winch.unhandled)}
        imagefile.write(cache, json.dumps(doc).encode())
    except OSError:
        pass
    return Calibration(flags, winch if flags else None)


def _calibration_run(engine: wasmtime.Engine, ticker: Ticker, module: wasmtime.Module, root: Path,
                     argv0: str, move: int = 0) -> list[bytes]:
    """The guest's memory at each of the calibration's naps; `move`: the command line that much
    longer (a trailing comment)."""
    memories: list[bytes] = []
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    reactor.define_host(linker, engine)
    i32 = wasmtime.ValType.i32()

    def poll_oneoff(caller: wasmtime.Caller, subs: int, events: int, count: int, count_out: int) -> int:
        memory = caller.get("memory")
        if not isinstance(memory, wasmtime.Memory) or count != 1 or len(memories) >= NAPS:
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
    wasi.argv = [argv0, "-c", CALIBRATION + "#" * move]
    wasi.preopen_dir(str(root), "/", False)
    store.set_wasi(wasi)
    try:
        start = reactor.entry(store, linker.instantiate(store, module).exports(store))
        if start is not None:
            with ticker:
                start()
    except (wasmtime.ExitTrap, wasmtime.Trap, wasmtime.WasmtimeError):
        pass
    return memories


def _winch(sigint: tuple[Flag, ...], memories: list[bytes]) -> Winch | None:
    """SIGWINCH's words from the calibration's naps (see CALIBRATION), if they are as
    expected: SIGINT's "tripped" word is the one of its words that SIGWINCH does not set,
    SIGWINCH's is 26 pairs further and went from 0 to 1, and the shared ones gained their bits
    again (other words may have changed too); its handler word held three different values:
    SIG_DFL, then SIG_IGN, then the calibration's handler."""
    size = min(len(memories[3]), len(memories[4])) // 4 * 4
    before, after = array.array("I", memories[3][:size]), array.array("I", memories[4][:size])

    def gained(address: int, bits: int) -> bool:
        return address + 4 <= size and not before[address // 4] & bits and after[address // 4] & bits == bits

    own = [f for f in sigint if not gained(*f)]
    if len(own) != 1 or own[0][1] != 1:
        return None
    tripped = own[0][0] + (SIGWINCH - SIGINT) * HANDLER_PAIR
    handler = tripped + 4
    if handler + 4 > size or (before[tripped // 4], after[tripped // 4]) != (0, 1):
        return None

    def word(memory: bytes) -> int:
        return int(struct.unpack_from("<I", memory, handler)[0])

    default, ignore, installed = word(memories[0]), word(memories[2]), word(memories[3])
    if len({default, ignore, installed, 0}) != 4:
        return None
    return Winch(_in_order(((tripped, 1), *(f for f in sigint if f != own[0])), tripped, SIGWINCH), handler,
                 (0, default, ignore))


def _tripped(flags: tuple[Flag, ...]) -> int | None:
    """SIGINT's "tripped" word among its `flags` where SIGWINCH cannot tell (before 3.10): the one
    whose handlers' array ends at another of them, `is_tripped` (None unless exactly one does)."""
    found = [a for a, _ in flags if any(b == a + (NSIG - SIGINT) * HANDLER_PAIR for b, _ in flags)]
    return found[0] if len(found) == 1 else None


def _in_order(flags: tuple[Flag, ...], tripped: int, signal: int = SIGINT) -> tuple[Flag, ...]:
    """`flags` in the order CPython's own signal handler sets them (trip_signal): the signal's
    "tripped" word, then `is_tripped` (the first word after the handlers' array), then the words
    the eval loop polls. Set from another thread while the guest runs (the page, deliver_async),
    in another order a busy guest can see its eval breaker, find `is_tripped` still 0, clear the
    breaker and lose the Ctrl-C: the 3.11 runtime's eval-breaker words lie below its handlers,
    so address order was that order."""
    end = tripped + (NSIG - signal) * HANDLER_PAIR

    def rank(flag: Flag) -> tuple[int, int]:
        return (0 if flag[0] == tripped else 1 if flag[0] >= end else 2, abs(flag[0] - end))
    return tuple(sorted(flags, key=rank))


def _flags(before: bytes, after: bytes, handled: bytes) -> tuple[Flag, ...] | None:
    """The words that gained one bit and lost none from `before` to `after` (interrupt_main)
    and were back to their value of `before` by `handled` (the KeyboardInterrupt was handled),
    if there are FLAG_WORDS of them."""
    size = min(len(before), len(after), len(handled)) // 4 * 4
    a, b, c = (array.array("I", m[:size]) for m in (before, after, handled))
    found = []
    for i in range(len(a)):
        if a[i] != b[i]:
            bits = a[i] ^ b[i]
            if not a[i] & bits and not bits & (bits - 1) and c[i] == a[i]:
                found.append((i * 4, bits))
    return tuple(found) if len(found) in FLAG_WORDS else None
