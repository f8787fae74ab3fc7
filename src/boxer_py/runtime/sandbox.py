"""The per-run launch: one guest's whole world (its root, mounts, argv, env and stdio) as a WASI
configuration, a store under the run's limits, and the call of its entry point, timed and
measured. Nothing here is kept from one run to the next; the compiled module (and the snapshot
a run resumes) come from programs.py, the run's writable layer from workspace.py.
"""
from __future__ import annotations

import ctypes
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import wasmtime

from boxer_py.errors import RunError
from boxer_py.runtime import interrupt, reactor, watchdog
from boxer_py.runtime.engines import Engines
from boxer_py.runtime.exitwatch import ExitWatch, end_process
from boxer_py.runtime.interrupt import Interrupts
from boxer_py.runtime.modcache import Loaded
from boxer_py.runtime.net import host as nethost
from boxer_py.runtime.outcome import reason as _reason
from boxer_py.runtime.outcome import record
from boxer_py.runtime.output import Sink
from boxer_py.runtime.preinit import snapshot as preinit
from boxer_py.runtime.preinit.snapshot import Snapshot
from boxer_py.runtime.runwatch import DiskWatch
from boxer_py.runtime.spec import TRAP_EXIT_CODE, RunResult, RunSpec
from boxer_py.runtime.ticker import Ticker
from boxer_py.runtime.wasi import clock as wasiclock
from boxer_py.runtime.wasi import readonly, terminal
from boxer_py.runtime.wasi.cwd import set_cwd

OOM_MARGIN = 4 << 20
# Under a memory limit (see limit_memory): instances, tables, and each table's elements (a
# funcref takes 8 to 16 bytes of host memory), so tables together stay under a quarter of it.
MAX_INSTANCES = 4
MAX_TABLES = 4
TABLE_ELEMENT_SHARE = 256
MIN_TABLE_ELEMENTS = 1 << 16

Exports = Mapping[str, object]  # an instance's exports by name (wasmtime's InstanceExports)
Keep = Callable[[wasmtime.Store, Exports], None]  # told the store and exports once a run has ended


@dataclass(frozen=True)
class Resume:
    """Start a run from a pre-initialised interpreter (see preinit)."""
    module: Loaded         # the program made resumable, or that with the snapshot baked in
    snapshot: Snapshot
    message: bytes         # the run's request, for the guest's inbox
    baked: bool = False
    cwd_slot: int | None = None  # wasi-libc's directory in the (resumable) module: set from here


class Another(Exception):
    """A run made ready ahead is to run another command (RunSpec.ready returned it), which the
    launcher plans from its start in the same writable layer: no guest code has run."""

    def __init__(self, command: tuple[str, ...]):
        super().__init__()
        self.command = command


@dataclass(frozen=True)
class Aim:
    """Another command that the instance made ready ahead runs in place (Launcher._aim): the same
    program, environment and snapshot, only another argv and request (inbox message)."""
    command: tuple[str, ...]  # the run's (RunSpec.command)
    argv: list[str]
    message: bytes


Retarget = Callable[[tuple[str, ...]], Aim]  # how another command runs in place, or Another


def limit_memory(store: wasmtime.Store, memory: int | None) -> None:
    """Cap a store's guest memory at `memory` bytes (None: no cap, which also lifts an earlier
    one). Wasmtime's limits are per memory and per table: one memory and few, bounded tables
    keep all of them together near the limit (a module with 64 memories, or a table grown by
    1e8 elements, would otherwise take gigabytes)."""
    if memory is None:
        store.set_limits()
    else:
        store.set_limits(memory_size=memory, memories=1, instances=MAX_INSTANCES, tables=MAX_TABLES,
                         table_elements=max(MIN_TABLE_ELEMENTS, memory // TABLE_ELEMENT_SHARE))


def out_of_memory(used: int, limit: int | None) -> bool:
    """Whether a guest that failed ran out of memory: wasmtime refuses a grow past the limit
    silently (memory.grow returns -1), so the sign is a failure within one growth step of the cap."""
    return limit is not None and used + OOM_MARGIN >= limit


def _ready(spec: RunSpec, exits: ExitWatch | None, deadline: float | None, started: float,
           read_only: readonly.ReadOnlyCalls, retarget: Retarget | None) -> tuple[float | None, float, Aim | None]:
    """Call the run's `ready` (RunSpec.ready); without epochs, the run's clocks (its deadline and
    duration, which its exit watch keeps too) then start anew. Returns them, and where another
    command it returned is to run in place (`retarget`'s Aim). If it raises (Another too), no
    guest ran (a run made ready ahead, cli/ahead.py): the run's read-only guard is let go."""
    if spec.ready is None:
        return deadline, started, None
    try:
        command = spec.ready()
        aim = None if command is None else (retarget or _from_its_start)(command)
    except BaseException:
        read_only.detach()
        raise
    if exits is None:
        return deadline, started, aim
    timeout = spec.limits.timeout
    exits.deadline = None if timeout is None else time.monotonic() + timeout
    exits.started = time.perf_counter()
    return exits.deadline, exits.started, aim


def _from_its_start(command: tuple[str, ...]) -> Aim:
    raise Another(command)


@dataclass
class Sandbox:
    """Starts one guest at a time per call (any number of threads at once) on `engines`."""

    engines: Engines
    deadlines: wasiclock.Deadlines
    terminals: terminal.Terminals = field(default_factory=terminal.Terminals)
    # Takes a finished run's store to let go of later (Workspaces.drop_later): unmapping its
    # memory takes a millisecond or more, which need not stand between a run and its result.
    release: Callable[[object], None] | None = None

    def run(self, root: Path, loaded: Loaded, argv: list[str], env: dict[str, str], workdir: str,
            spec: RunSpec, tmp: Path, labels: dict[str, str] | None = None,
            shared: Sequence[tuple[str, Path]] = (), resume: Resume | None = None,
            keep: Keep | None = None, interrupts: Interrupts | None = None,
            pinned: Sequence[readonly.Pinned] = (), retarget: Retarget | None = None) -> RunResult:
        """The guest's whole world: `root` as /, the mounts, argv, env and stdio; nothing else.
        `retarget`: for a run made ready ahead (RunSpec.ready) that resumes a snapshot, how
        another command runs in place (an Aim: a WASI configuration made for its argv replaces
        this one, its message this one's in the inbox) or from its start (Another)."""
        cap = spec.limits.max_output
        stdout = Sink(cap, 1 if spec.stream else None, spec.on_stdout)
        stderr = Sink(cap, 2 if spec.stream else None, spec.on_stderr)
        mounted = [m.guest for m in spec.mounts]  # checked by run(); run_in and boot runs have none
        shown = [(g, h) for g, h in shared if not reactor.covered(g, mounted)]
        extra = [*shown, *reactor.aliases(labels or {}, root, mounted, shared)]
        if spec.network.enabled:  # socket slots after every other preopen (net/wasi.py)
            env = dict(env)

            def prepare(wasi: wasmtime.WasiConfig) -> nethost.Net:
                return self.engines.get(loaded.stack).networking.prepare(
                    wasi, len(extra) + len(spec.mounts), tmp, env, spec.network, spec.on_listen, spec.on_refused)
        wasi, net = self._wasi(root, env, spec, tmp, extra, stdout, stderr, prepare if spec.network.enabled else None)
        wasi.argv = argv
        if retarget is not None and (resume is None or net is not None):
            retarget = None  # (runs from its start: Another)
        again = None if retarget is None else self._wasi(root, env, spec, tmp, extra, stdout, stderr, None)[0]
        timeout = spec.limits.timeout
        ro = readonly.guard(spec.read_only, len(extra), [m.read_only for m in spec.mounts], pinned)  # EROFS there
        store: list[wasmtime.Store] = []  # the run's, once _execute (and all it held) is done

        def stop(result: RunResult) -> None:  # engines without epochs: the run ends with its process
            self._output(result, stdout, stderr)
            result.preinitialised = resume is not None
            (spec.on_stop or end_process(argv[0]))(result)
        aimed = None if retarget is None or again is None else (retarget, again)
        try:
            if timeout is not None and spec.mounts:  # see watchdog.Backstop
                with watchdog.Backstop(time.monotonic() + timeout, [m.host for m in spec.mounts]):
                    result = self._execute(loaded, wasi, argv, workdir, spec, root, resume, keep, net, interrupts, ro,
                                           store, stop, aimed)
            else:
                result = self._execute(loaded, wasi, argv, workdir, spec, root, resume, keep, net, interrupts, ro, store,
                                       stop, aimed)
        finally:
            if net is not None:
                self.engines.get(loaded.stack).networking.finish(net)
            if self.release is not None and store:  # also a run whose `ready` raised (cli/ahead.py)
                self.release(store.pop())
        if net is not None:
            result.network = net.summary()
        self._output(result, stdout, stderr)
        for sink in (stdout, stderr):
            if sink.error is not None:  # the guest has ended; the caller's callback failed
                raise sink.error
        return result

    @staticmethod
    def _aim(store: wasmtime.Store, memory: wasmtime.Memory | None, resume: Resume | None, before: list[bytes],
             aim: Aim | None, aimed: tuple[Retarget, wasmtime.WasiConfig] | None) -> None:
        """Make the instance made ready ahead the one `aim`'s command would get (if any), before
        any of its code runs: this run's WASI configuration but its argv (`aimed`'s), with the
        command's argv, replaces the store's, and its message the inbox's (preinit.readdress)."""
        if aim is None:
            return
        if resume is None or memory is None or len(before) != 1 or aimed is None:
            raise Another(aim.command)  # (not so: Launcher._aim's checks; from its start then)
        again = aimed[1]
        again.argv = aim.argv
        preinit.readdress(store, memory, resume.snapshot, before[0], aim.message)
        store.set_wasi(again)

    @staticmethod
    def _wasi(root: Path, env: dict[str, str], spec: RunSpec, tmp: Path, extra: Sequence[tuple[str, Path]],
              stdout: Sink, stderr: Sink, prepare: Callable[[wasmtime.WasiConfig], nethost.Net] | None
              ) -> tuple[wasmtime.WasiConfig, nethost.Net | None]:
        """A run's WASI configuration but its argv: `root` as /, the read-only `extra`, the
        mounts, the network's sockets (`prepare`), env and stdio."""
        wasi = wasmtime.WasiConfig()
        wasi.preopen_dir(str(root), "/", not spec.read_only)
        for guest, host in extra:
            wasi.preopen_dir(str(host), guest, False)
        for m in spec.mounts:
            wasi.preopen_dir(str(m.host), m.guest, not m.read_only)
        net = None if prepare is None else prepare(wasi)
        wasi.env = list(env.items())
        if spec.stdin == "-":
            wasi.inherit_stdin()
        elif isinstance(spec.stdin, bytes):
            (tmp / "stdin").write_bytes(spec.stdin)
            wasi.stdin_file = str(tmp / "stdin")
        elif spec.stdin:
            path, held = watchdog.stdin_path(spec.stdin)  # never a FIFO that would block right here
            try:
                wasi.stdin_file = path
            finally:
                for fd in held:
                    os.close(fd)
        else:
            wasi.stdin_file = os.devnull
        # -t: a terminal is handed over as it is, so the guest's isatty() is true (Wasmtime
        # says so only of this process's own descriptors); what goes there is not captured.
        for fd, sink, inherit in ((1, stdout, wasi.inherit_stdout), (2, stderr, wasi.inherit_stderr)):
            if spec.tty and spec.stream and os.isatty(fd):
                inherit()
                continue
            setattr(wasi, "stdout_custom" if fd == 1 else "stderr_custom", sink)
            if net is not None:  # the guest's writes go to the sink from the run's own thread (net/wasi.py)
                net.stdio[fd] = sink
        return wasi, net

    @staticmethod
    def _output(result: RunResult, stdout: Sink, stderr: Sink) -> None:
        result.stdout, result.stderr = stdout.finish(), stderr.finish()
        result.stdout_truncated, result.stderr_truncated = stdout.truncated, stderr.truncated
        result.stdout_dropped, result.stderr_dropped = stdout.dropped, stderr.dropped

    def _execute(self, loaded: Loaded, wasi: wasmtime.WasiConfig, argv: list[str], workdir: str, spec: RunSpec,
                 root: Path, resume: Resume | None = None, keep: Keep | None = None,
                 net: nethost.Net | None = None, interrupts: Interrupts | None = None,
                 read_only: readonly.Guard | None = None, hold: list[wasmtime.Store] | None = None,
                 stop: Callable[[RunResult], None] | None = None,
                 aimed: tuple[Retarget, wasmtime.WasiConfig] | None = None) -> RunResult:
        limits, on_start, name = spec.limits, spec.on_start, argv[0]
        engine = self.engines.get(loaded.stack)
        editor = terminal.editor(spec.tty and spec.stdin == "-" and net is None, spec.interrupt, argv)  # -it: a REPL's lines
        tty = (lambda e: terminal.linker(e, self.deadlines, self.terminals)) if editor else None  # -it: fd_read of stdin is the line editor's
        linker = engine.linker_for(net is not None, tty, read_only is not None)  # read-only: writes answer EROFS
        store = wasmtime.Store(engine.engine)
        store.set_wasi(wasi)
        if hold is not None:
            hold.append(store)
        if limits.memory is not None:
            limit_memory(store, limits.memory)
        deadline = None if limits.timeout is None else time.monotonic() + limits.timeout
        watch, exits = None, None
        started = time.perf_counter()
        if not engine.epochs:  # stopped from outside, by ending the process (exitwatch.py)
            watch = None if limits.disk is None else DiskWatch(root, limits.disk, None, self.deadlines)
            exits = ExitWatch(stop or end_process(name), deadline, limits.timeout, spec.cancel, interrupts, watch,
                              started=started)
        elif limits.disk is not None or spec.cancel is not None or interrupts is not None:
            watch = DiskWatch(root, limits.disk, deadline, self.deadlines, spec.cancel, interrupts=interrupts)
            watch.install(store)
        else:
            ticks = (1 << 62) if limits.timeout is None else max(1, math.ceil(limits.timeout / Ticker.TICK))
            store.set_epoch_deadline(ticks)
        result = RunResult(exit_code=0)
        try:
            instance = (linker or engine.linker).instantiate(store, loaded.module)
        except wasmtime.WasmtimeError as e:
            if limits.memory is not None and "count too high" in str(e):
                return RunResult(TRAP_EXIT_CODE, out_of_memory=True,
                                 trap=f"cannot start under a memory limit: {_reason(e)} (at most one memory, "
                                      f"{MAX_TABLES} tables)")
            if limits.memory is not None and "memory" in str(e):
                return RunResult(TRAP_EXIT_CODE, out_of_memory=True, trap=f"needs more memory than the {limits.memory}-byte limit")
            raise RunError(f"{name}: cannot start: {_reason(e)}", 126) from None
        exports = instance.exports(store)
        found = exports["memory"] if "memory" in exports else None
        memory = found if isinstance(found, wasmtime.Memory) else None  # not a memory: none to measure
        if interrupts is not None:
            interrupts.memory = memory
            if memory is not None and exits is not None:
                interrupts.raw = (ctypes.addressof(memory.data_ptr(store).contents), memory.data_len(store))
        if net is not None:
            engine.networking.attach(store, memory, net, name)
        if read_only is not None:
            engine.read_only.attach(store, memory, read_only)
        before: list[bytes] = []  # the snapshot's bytes under the message (Aim)
        if resume is not None:  # the guest changes to its workdir itself
            start = preinit.restore(store, exports, resume.snapshot, resume.message, resume.baked,
                                    before if aimed else None)
            if start is None:
                return RunResult(TRAP_EXIT_CODE, out_of_memory=True, trap=f"needs more memory than the {limits.memory}-byte limit")
            if workdir != "/" and resume.cwd_slot is not None and memory is not None \
                    and preinit.at_root(store, memory, resume.cwd_slot, resume.snapshot):  # else the guest's os.chdir does it
                try:
                    set_cwd(store, memory, resume.cwd_slot, workdir)
                except (ValueError, wasmtime.WasmtimeError):
                    pass  # a long path, or memory at its cap: the guest's os.chdir does it
            result.preinitialised = True
        else:
            if workdir != "/" and loaded.cwd_slot is not None and memory is not None:
                set_cwd(store, memory, loaded.cwd_slot, workdir)
            start = reactor.entry(store, exports)
        if start is None:
            raise RunError(f"{name}: not a WASI command (no _start) nor a reactor (no run)", 126)
        deadline, started, aim = _ready(spec, exits, deadline, started, engine.read_only, aimed and aimed[0])
        self._aim(store, memory, resume, before, aim, aimed)
        if on_start is not None:
            on_start()
        self.deadlines.set(deadline, spec.cancel, interrupts)
        if editor is not None:
            self.terminals.set(editor, self.terminals.plain(engine.engine, store, memory), interrupts.deliver if interrupts else None)
        cpu = time.thread_time()
        with exits or engine.ticker:  # without epochs, nothing to tick
            try:
                result.exit_code = start()
            except (wasmtime.ExitTrap, wasmtime.Trap, wasmtime.WasmtimeError, wasiclock.Expired) as e:
                # wasmtime-py raises from a frame that holds the exception: drop the traceback so
                # the cycle (and the store in it) is freed now, not by a GC pass at exit.
                e.__traceback__ = None
                record(e, result, limits, self.deadlines.expired, spec.cancel)
                interrupt.settle(interrupts, result)
            finally:
                self.deadlines.set(None)
                self.terminals.set(None)
                engine.read_only.detach()
        result.cpu_ms = (time.thread_time() - cpu) * 1000
        result.peak_memory = 0 if memory is None else memory.data_len(store)
        if keep is not None:
            keep(store, exports)
        result.duration_ms = (time.perf_counter() - started) * 1000
        if watch is not None and limits.disk is not None and (watch.full or watch.over()):
            result.disk_full = True
            if not result.timed_out:
                result.exit_code, result.trap = TRAP_EXIT_CODE, f"wrote more than the {limits.disk}-byte disk limit"
        if memory is not None and result.exit_code != 0:
            result.out_of_memory = out_of_memory(memory.data_len(store), limits.memory)
        return result
