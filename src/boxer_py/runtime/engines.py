"""The Wasmtime engines a launcher runs programs on: one per max_wasm_stack a program's image
label asks for (modcache.wasm_stack), each with its linker, compiled-module cache and epoch ticker.
A module compiled for one engine can only be instantiated in a store of the same engine."""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import wasmtime

from boxer_py.errors import RunError
from boxer_py.runtime import reactor
from boxer_py.runtime.modcache import ModuleCache, new_engine
from boxer_py.runtime.net.wasi import Networking
from boxer_py.runtime.ticker import Ticker
from boxer_py.runtime.wasi import clock as wasiclock


@dataclass
class Engine:
    engine: wasmtime.Engine
    modules: ModuleCache
    linker: wasmtime.Linker
    ticker: Ticker
    networking: Networking  # -p/--allow-net runs: their own linker, made on first use
    tty_linker: wasmtime.Linker | None = None  # -it runs: see tty

    def tty(self, make: Callable[[wasmtime.Engine], wasmtime.Linker]) -> wasmtime.Linker:
        """The linker of -it runs (the line editor serves stdin), made by `make` on first use."""
        if self.tty_linker is None:
            self.tty_linker = make(self.engine)
        return self.tty_linker


class Engines:
    def __init__(self, modules: Path, deadlines: wasiclock.Deadlines):
        self.modules = modules
        self.deadlines = deadlines
        self._lock = threading.Lock()
        self._engines: dict[int | None, Engine] = {}

    def get(self, stack: int | None) -> Engine:
        """The engine for programs with this max_wasm_stack (None: Wasmtime's default), made once."""
        with self._lock:
            found = self._engines.get(stack)
            if found is None:
                engine = new_engine(stack)
                linker = wasmtime.Linker(engine)
                linker.define_wasi()
                wasiclock.define(linker, self.deadlines)  # so a timeout also ends a sleeping guest
                reactor.define_host(linker, engine)
                found = self._engines[stack] = Engine(engine, ModuleCache(engine, self.modules, stack), linker,
                                                      Ticker(engine), Networking(engine, self.deadlines))
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
