"""The epoch thread: Wasmtime interrupts a guest at an epoch deadline, so a timeout needs a clock."""
from __future__ import annotations

import threading
import time

import wasmtime


class Ticker:
    """Advances the engine's epoch every TICK seconds while any run is active, and for LINGER
    ticks after the last one ends: runs that follow each other (a Session, an agent) then find
    the thread going instead of each starting one (about a millisecond, more under load)."""

    TICK = 0.01
    LINGER = 100

    def __init__(self, engine: wasmtime.Engine):
        self.engine = engine
        self.lock = threading.Lock()
        self.active = 0
        self.thread: threading.Thread | None = None

    def __enter__(self) -> Ticker:
        with self.lock:
            self.active += 1
            if self.thread is None:
                self.thread = threading.Thread(target=self._loop, name="boxer-epoch", daemon=True)
                self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.active -= 1

    def _loop(self) -> None:
        idle = 0
        while True:
            time.sleep(self.TICK)
            with self.lock:
                idle = 0 if self.active else idle + 1
                if idle > self.LINGER:
                    self.thread = None
                    return
            self.engine.increment_epoch()

