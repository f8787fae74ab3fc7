"""Stopping a guest by ending its process: the runs of a launcher without epoch interruption.

Epoch checks (a load and compare at every function entry and loop header) cost CPython's CPU
loops 13-25% (modcache.new_engine). A run that owns its process (`boxer run`, served or not:
the CLI's launcher, cli/run.py) does not need them: its guest is stopped by ending the
process, as a native program is by a kill. A thread of the run's process watches what an
epoch tick would have checked: the deadline, a cancel (SIGTERM/SIGHUP), the disk quota
(runwatch.DiskWatch's measurement), a Ctrl-C and a resize. A Ctrl-C or resize of a CPython
guest sets CPython's words from this thread, as a native signal handler does while the
interpreter runs (interrupt.Interrupts.deliver_async); anything else that stops the run
builds its result (what the guest wrote so far) and hands it to `stop`, which reports it and
ends the process. A guest cannot delay it: the thread never waits for the guest.
"""
from __future__ import annotations

import _thread
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from boxer_py.runtime.interrupt import Interrupts
from boxer_py.runtime.runwatch import DiskWatch
from boxer_py.runtime.spec import INTERRUPT_EXIT_CODE, TIMEOUT_EXIT_CODE, TRAP_EXIT_CODE, RunResult
from boxer_py.runtime.wasi import clock as wasiclock

POLL = 0.01  # seconds between checks: an epoch tick's (ticker.Ticker.TICK)
# A Ctrl-C is left this long to the guest's own thread (a sleep takes it within clock.POLL and
# wakes) before it is set from here; once set, a guest that has not taken it GRACE later is
# blocked in the host (reading stdin): the run stops (130), as watchdog.cancel_on_signals does.
HANDOVER = 2 * wasiclock.POLL
GRACE = 1.0


@dataclass
class ExitWatch:
    """Watches one run of a launcher without epochs until `close`; `stop(result)` must end
    the process (it is called at most once, from this watch's thread)."""

    stop: Callable[[RunResult], None]
    deadline: float | None = None  # time.monotonic() seconds
    timeout: float | None = None  # the run's --timeout, for its message
    cancel: threading.Event | None = None
    interrupts: Interrupts | None = None
    disk: DiskWatch | None = None  # measures the writable layer (its limit set)
    started: float | None = None  # time.perf_counter() when the run began, for its duration_ms
    _cpu: tuple[int, float] | None = None  # the guest thread's CPU clock and its reading at the start
    _over: threading.Event = field(default_factory=threading.Event)
    # Held by each of the watch's checks (and a stop): once __exit__ has it, the watch touches
    # nothing of the run again (its memory, its layer) and never stops it.
    _ending: threading.RLock = field(default_factory=threading.RLock)

    def __enter__(self) -> ExitWatch:
        """Entered on the guest's thread, whose CPU time a stopped run reports. The watch's
        thread is started without waiting for it to run (threading's start() does wait, and
        under load that wait, and a join at the end, each cost a turn of the scheduler)."""
        clock = time.pthread_getcpuclockid(threading.get_ident())
        self._cpu = clock, time.clock_gettime(clock)
        _thread.start_new_thread(self._watch, ())
        return self

    def __exit__(self, *exc: object) -> None:
        """The guest is over: no check nor stop from now on. If the watch is in a check (or
        stopping the run, which ends the process: then this never returns), this waits for
        it; the thread then sees `_over` and leaves by itself."""
        with self._ending:
            self._over.set()

    def _watch(self) -> None:
        next_disk = 0.0
        asked: float | None = None  # when a Ctrl-C came that the guest's thread has not taken
        given: float | None = None  # when this thread set it in the guest's words
        while not self._over.wait(POLL):
            with self._ending:
                if self._over.is_set():
                    return None
                now = time.monotonic()
                if self.cancel is not None and self.cancel.is_set():
                    return self._end(RunResult(INTERRUPT_EXIT_CODE, trap="interrupted"))
                interrupts = self.interrupts
                if interrupts is not None and interrupts.request.is_set():
                    if not interrupts.deliverable():
                        return self._end(RunResult(INTERRUPT_EXIT_CODE, trap="interrupted"))
                    asked = now if asked is None else asked
                    if now - asked >= HANDOVER and interrupts.deliver_async():  # CPython raises KeyboardInterrupt
                        asked, given = None, now                                 # at its next check
                else:
                    asked = None
                if interrupts is not None and given is not None and now - given >= GRACE:
                    if interrupts.pending_async():  # not taken: the guest is blocked in the host
                        return self._end(RunResult(INTERRUPT_EXIT_CODE, trap="interrupted"))
                    given = None
                if interrupts is not None and interrupts.resized.is_set():
                    interrupts.deliver_winch_async()
                if self.deadline is not None and now >= self.deadline:
                    return self._end(RunResult(TIMEOUT_EXIT_CODE, timed_out=True, trap=f"timed out after {self.timeout:g}s"))
                if self.disk is not None and self.disk.limit is not None and now >= next_disk:
                    if self.disk.over():
                        return self._end(RunResult(TRAP_EXIT_CODE, disk_full=True,
                                                   trap=f"wrote more than the {self.disk.limit}-byte disk limit"))
                    next_disk = time.monotonic() + self.disk.every()
        return None

    def _end(self, result: RunResult) -> None:
        with self._ending:
            if not self._over.is_set():  # the guest did not finish meanwhile
                if self.started is not None:
                    result.duration_ms = (time.perf_counter() - self.started) * 1000
                if self._cpu is not None:
                    result.cpu_ms = (time.clock_gettime(self._cpu[0]) - self._cpu[1]) * 1000
                self.stop(result)


def end_process(what: str) -> Callable[[RunResult], None]:
    """The stop of a guest run that has no report of its own (a snapshot's boot run, the
    interrupt calibration): one line naming it, then boxer's own exit code, 125."""
    def stop(result: RunResult) -> None:
        os.write(2, f"boxer: {what}: {result.trap or 'stopped'}\n".encode())
        os._exit(125)
    return stop
