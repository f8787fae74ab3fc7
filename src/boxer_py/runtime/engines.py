"""The Wasmtime engines a launcher runs programs on: one per max_wasm_stack a program's image
label asks for (modcache.wasm_stack), each with its linker, compiled-module cache and epoch ticker.
A module compiled for one engine can only be instantiated in a store of the same engine."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import wasmtime

from boxer_py.errors import RunError
from boxer_py.runtime import reactor
from boxer_py.runtime.exitwatch import ExitWatch, end_process
from boxer_py.runtime.modcache import ModuleCache, new_engine
from boxer_py.runtime.net.wasi import Networking
from boxer_py.runtime.ticker import Ticker
from boxer_py.runtime.wasi import clock as wasiclock
from boxer_py.runtime.wasi.readonly import ReadOnlyCalls


@dataclass
class Engine:
    engine: wasmtime.Engine
    modules: ModuleCache
    linker: wasmtime.Linker
    ticker: Ticker
    networking: Networking  # -p/--allow-net runs: their own linker, made on first use
    deadlines: wasiclock.Deadlines
    epochs: bool = True  # False: no epoch checks; a run is stopped by ending its process (exitwatch.py)
    tty_linker: wasmtime.Linker | None = None  # -it runs: see tty
    read_only: ReadOnlyCalls = field(init=False)  # runs with a read-only mount or root: see linker_for
    _read_only_linkers: dict[str, wasmtime.Linker] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.read_only = ReadOnlyCalls(self.engine)

    def guard(self, seconds: float, what: str) -> AbstractContextManager[object]:
        """What stops a guest run outside a Sandbox (interrupt's calibration) past `seconds`:
        its epoch deadline, or on an engine without epochs, ending the process (exitwatch)."""
        if self.epochs:
            return nullcontext()
        return ExitWatch(end_process(what), time.monotonic() + seconds, seconds)

    def tty(self, make: Callable[[wasmtime.Engine], wasmtime.Linker]) -> wasmtime.Linker:
        """The linker of -it runs (the line editor serves stdin), made by `make` on first use."""
        if self.tty_linker is None:
            self.tty_linker = make(self.engine)
        return self.tty_linker

    def linker_for(self, net: bool, tty: Callable[[wasmtime.Engine], wasmtime.Linker] | None,
                   read_only: bool) -> wasmtime.Linker:
        """The linker of a run: networked, -it (`tty` makes it), or plain; with `read_only`
        (a read-only mount or root), its writing path calls answer EROFS (wasi/readonly.py)."""
        if not read_only:
            return self.networking.linker() if net else self.tty(tty) if tty is not None else self.linker
        kind = "net" if net else "tty" if tty is not None else "plain"
        with self._lock:
            made = self._read_only_linkers.get(kind)
            if made is None:
                made = self.networking.new_linker() if net else tty(self.engine) if tty is not None else \
                    plain_linker(self.engine, self.deadlines)
                self.read_only.define(made)
                self._read_only_linkers[kind] = made
            return made


def plain_linker(engine: wasmtime.Engine, deadlines: wasiclock.Deadlines) -> wasmtime.Linker:
    """WASI with boxer's clocks (so a timeout also ends a sleeping guest) and the reactors' host."""
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    wasiclock.define(linker, deadlines)
    reactor.define_host(linker, engine)
    return linker


class Engines:
    def __init__(self, modules: Path, deadlines: wasiclock.Deadlines, epochs: bool = True):
        self.modules = modules
        self.deadlines = deadlines
        self.epochs = epochs  # every engine's (see modcache.new_engine)
        self._lock = threading.Lock()
        self._engines: dict[int | None, Engine] = {}

    def get(self, stack: int | None) -> Engine:
        """The engine for programs with this max_wasm_stack (None: Wasmtime's default), made once."""
        with self._lock:
            found = self._engines.get(stack)
            if found is None:
                engine = new_engine(stack, epochs=self.epochs)
                found = self._engines[stack] = Engine(engine, ModuleCache(engine, self.modules, stack, self.epochs),
                                                      plain_linker(engine, self.deadlines), Ticker(engine),
                                                      Networking(engine, self.deadlines), self.deadlines,
                                                      self.epochs)
            return found


def names(find: Callable[[str], Path], program: Path) -> Callable[[str], bool]:
    """Whether a guest path names `program` (`find` resolves it, raising RunError if it names
    nothing): how a label keyed by a program's path is matched to the program a run starts."""
    def name(guest: str) -> bool:
        try:
            return find(guest) == program
        except RunError:
            return False
    return name
