"""The WASI calls of a networked run: socket slots served by net/host.py, the rest by Wasmtime.

Wasmtime's preview 1 has no sockets a module can be given (its socket preopen is gone, its
`sock_*` answer ENOTSOCK), so a networked run's linker replaces the descriptor calls with
Python ones. A call on a slot is served here; any other descriptor goes on to Wasmtime's own
function through a trampoline: a tiny module instantiated per run that imports the guest's
memory and Wasmtime's functions and re-exports both (Wasmtime's WASI reads the *calling*
instance's memory, so a Python host function cannot call it directly).

Slots are reserved at start as extra read-only preopens of one empty directory, placed after
every real preopen: their numbers exist for Wasmtime (so it never hands them to an opened file)
and for a guest's libc or wasi-vfs (which only know the descriptors they found at start), while
`fd_prestat_get` reports them as preopens of a kind libc does not know, so it skips them. A
slot is never closed in Wasmtime: closing one frees it here only. Relative paths against a slot
reach that empty, read-only directory and nothing else.

`poll_oneoff` is the deadline-aware one of wasi/clock.py, extended to wait on slots, and
`clock_time_get` is served here too, through rawcall (a served request reads the clock a few
times; wasmtime-py's generic path costs several times the call itself). The guest's memory is
looked up once per run (`attach`), not by name on every call.
"""
from __future__ import annotations

import ctypes
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi

from boxer_py.errors import RunError
from boxer_py.runtime import reactor
from boxer_py.runtime.net import host as nethost
from boxer_py.runtime.net import rawcall
from boxer_py.runtime.net.host import EBADF, EINVAL, ENOTSOCK, SUCCESS, Net
from boxer_py.runtime.net.policy import Network
from boxer_py.runtime.wasi import clock as wasiclock
from boxer_py.runtime.wasi.clock import CLOCK, FD_READ, FD_WRITE, SUBSCRIPTION_SIZE, WASI

FORWARDED = {  # the calls a slot changes, with their signatures (all i32)
    "fd_read": 4, "fd_write": 4, "fd_close": 1, "fd_fdstat_get": 2, "fd_fdstat_set_flags": 2,
    "fd_filestat_get": 2, "fd_prestat_get": 2, "fd_renumber": 2,
}
FILETYPE_SOCKET_STREAM, FILETYPE_CHARACTER_DEVICE = 6, 2
ALL_RIGHTS = (1 << 29) - 1
PREOPEN_OTHER = 1  # a prestat tag that is not a directory: libc and wasi-vfs pass it by
MAX_IOVS = 1024
SLOTS = 64  # descriptors reserved for a networked run: the control descriptor and 63 sockets
GUEST_DIR = "/.boxer/net"  # where the guest-side modules are seen (first on PYTHONPATH)
HOST_DIR = Path(__file__).resolve().parent / "guest"
_IOV, _U32 = struct.Struct("<II"), struct.Struct("<I")


def reserve(wasi: wasmtime.WasiConfig, preopens: int, empty: Path, env: dict[str, str], policy: Network,
            deadlines: wasiclock.Deadlines, ports: dict[int, nethost.Listener]) -> Net:
    """Add the guest-side modules and the slots as the last preopens of a run that already has
    `preopens` of them, point the guest at them (PYTHONPATH, BOXER_NET_FD in `env`), and return
    the run's Net. `empty` is an empty directory of the run's own."""
    wasi.preopen_dir(str(HOST_DIR), GUEST_DIR, False)
    # The libc of the VMware CPython (wasi-vfs) forgets the last directory preopen before one
    # of another kind: an empty one goes there, so the guest-side modules stay reachable.
    wasi.preopen_dir(str(empty), "/.boxer/slot", False)
    first = 3 + preopens + 2
    for _ in range(SLOTS):
        wasi.preopen_dir(str(empty), "/.boxer/slot", False)
    path = env.get("PYTHONPATH")
    env.update({"PYTHONPATH": GUEST_DIR + (":" + path if path else ""), "BOXER_NET_FD": str(first)})

    def cancelled() -> bool:
        cancel = deadlines.cancel()
        return cancel is not None and cancel.is_set()
    return Net(policy, first, SLOTS, ports, deadlines.get, cancelled)


class Networking:
    """A launcher's networked runs: their linker, made on first use (runs without a network
    never build it), and each run's slots and trampoline."""

    def __init__(self, engine: wasmtime.Engine, deadlines: wasiclock.Deadlines):
        self.engine, self.deadlines = engine, deadlines
        self._lock = threading.Lock()
        self._made: tuple[Definer, wasmtime.Linker] | None = None

    def _make(self) -> tuple[Definer, wasmtime.Linker]:
        with self._lock:
            if self._made is None:
                definer = Definer(self.engine)
                self._made = (definer, self._linker(definer))
            return self._made

    def _linker(self, definer: Definer) -> wasmtime.Linker:
        linker = wasmtime.Linker(self.engine)
        linker.define_wasi()
        wasiclock.define(linker, self.deadlines)
        reactor.define_host(linker, self.engine)
        definer.define(linker, self.deadlines)
        return linker

    def linker(self) -> wasmtime.Linker:
        return self._make()[1]

    def new_linker(self) -> wasmtime.Linker:
        """Another networked linker over the same runs (for the caller to change further)."""
        return self._linker(self._make()[0])

    def prepare(self, wasi: wasmtime.WasiConfig, preopens: int, tmp: Path, env: dict[str, str],
                network: Network, on_listen: Callable[[list[dict[str, object]]], None] | None,
                on_refused: Callable[[dict[str, object]], None] | None = None) -> Net:
        """Bind the published ports (a busy one is a RunError now) and reserve the slots."""
        (tmp / "slots").mkdir(exist_ok=True)
        net = reserve(wasi, preopens, tmp / "slots", env, network, self.deadlines,
                      nethost.open_listeners(network.publish))
        net.on_refused = on_refused
        if on_listen is not None:
            on_listen(net.published())
        return net

    def attach(self, store: wasmtime.Store, memory: wasmtime.Memory | None, net: Net, name: str) -> None:
        if memory is None:
            raise RunError(f"{name}: cannot have a network: it exports no memory", 126)
        self._make()[0].attach(store, memory, net)

    def finish(self, net: Net) -> None:
        self._make()[0].detach()
        net.close_all()


def _trampoline_wat() -> str:
    imports, funcs = [], []
    for name, arity in FORWARDED.items():
        params = " ".join(["i32"] * arity)
        imports.append(f'(import "{WASI}" "{name}" (func ${name} (param {params}) (result i32)))')
        gets = " ".join(f"local.get {i}" for i in range(arity))
        funcs.append(f'(func (export "{name}") (param {params}) (result i32) {gets} call ${name})')
    return "(module\n" + "\n".join(imports) + '\n(import "env" "memory" (memory 0))\n(export "memory" (memory 0))\n' \
        + "\n".join(funcs) + ")"


@dataclass
class Active:
    net: Net
    forward: dict[str, rawcall.Forward]
    memory: rawcall.Guest  # the guest's, which every call here reads and writes


class Current:
    """The networked run executing on each thread (a run stays on one thread)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def set(self, active: Active | None) -> None:
        self._local.active = active

    def get(self) -> Active | None:
        return getattr(self._local, "active", None)


class Definer:
    """Builds networked linkers and a run's trampoline (the module is compiled once)."""

    def __init__(self, engine: wasmtime.Engine):
        self.engine = engine
        self.trampoline = wasmtime.Module(engine, bytes(wasmtime.wat2wasm(_trampoline_wat())))
        self.plain = wasmtime.Linker(engine)
        self.plain.define_wasi()
        self.current = Current()
        self.callbacks: list[object] = []  # the linker's C callbacks, alive as long as this

    def attach(self, store: wasmtime.Store, memory: wasmtime.Memory, net: Net) -> None:
        """Make `net` the current thread's run, with Wasmtime's functions for other descriptors."""
        imports: list[wasmtime.Func | wasmtime.Memory] = []
        for name in FORWARDED:
            func = self.plain.get(store, WASI, name)
            assert isinstance(func, wasmtime.Func)
            imports.append(func)
        imports.append(memory)
        instance = wasmtime.Instance(store, self.trampoline, imports)
        exports = instance.exports(store)
        forward = {}
        for name, arity in FORWARDED.items():
            func = exports[name]
            assert isinstance(func, wasmtime.Func)
            forward[name] = rawcall.Forward(func, arity)
        self.current.set(Active(net, forward, rawcall.Guest(memory)))

    def detach(self) -> None:
        self.current.set(None)

    def define(self, linker: wasmtime.Linker, deadlines: wasiclock.Deadlines) -> None:
        """Replace the descriptor calls in `linker` (which has the rest of WASI and the clock)."""
        calls = _Calls(self.current, deadlines)
        linker.allow_shadowing = True
        for name, arity in (("fd_read", 4), ("fd_write", 4), ("fd_close", 1), ("fd_fdstat_get", 2),
                            ("fd_fdstat_set_flags", 2), ("fd_filestat_get", 2), ("fd_prestat_get", 2),
                            ("fd_renumber", 2), ("sock_accept", 3), ("sock_recv", 6), ("sock_send", 5),
                            ("sock_shutdown", 2), ("poll_oneoff", 4)):
            rawcall.define(linker, WASI, name, arity, calls.guarded(getattr(calls, name)), self.callbacks)
        rawcall.define(linker, WASI, "clock_time_get", 3, calls.clock_time_get, self.callbacks, wide=(1,))
        linker.allow_shadowing = False


class _Calls:
    """The replaced WASI calls: a slot's served here, any other descriptor's passed on."""

    def __init__(self, current: Current, deadlines: wasiclock.Deadlines):
        self.current, self.deadlines = current, deadlines

    def guarded(self, func: Callable[..., int]) -> Callable[..., int]:
        deadlines = self.deadlines

        def call(*args: Any) -> int:
            try:
                return func(*args)
            except nethost.Expired:  # a blocked call reached the deadline (or Ctrl-C): as a sleep's
                cancel = deadlines.cancel()
                if cancel is None or not cancel.is_set():
                    deadlines.expire()
                raise wasiclock.Expired() from None
        return call

    def active(self) -> Active:
        active = self.current.get()
        if active is None:
            raise wasmtime.Trap("a networked call outside its run")
        return active

    def on(self, fd: int) -> Active | None:
        """The run if `fd` is one of its slots; None for any other descriptor."""
        active = self.active()
        return active if active.net.owns(fd) else None

    def fd_read(self, caller: int, fd: int, iovs: int, count: int, out: int) -> int:
        active = self.active()
        if not active.net.owns(fd):
            return active.forward["fd_read"](caller, fd, iovs, count, out)
        return _read(caller, active.memory, active.net, fd, iovs, count, out, None)

    def fd_write(self, caller: int, fd: int, iovs: int, count: int, out: int) -> int:
        active = self.active()
        if not active.net.owns(fd):
            sink = active.net.stdio.get(fd)
            if sink is not None:  # captured stdout/stderr: straight to its sink (see _stdio_write)
                return _stdio_write(caller, active.memory, sink, iovs, count, out)
            return active.forward["fd_write"](caller, fd, iovs, count, out)
        return _write_call(caller, active.memory, active.net, fd, iovs, count, out)

    def fd_close(self, caller: int, fd: int) -> int:
        active = self.active()
        if not active.net.owns(fd):
            active.net.stdio.pop(fd, None)  # that number is no longer the captured stream
            return active.forward["fd_close"](caller, fd)
        if fd == active.net.first:
            return EBADF  # the control descriptor stays
        return active.net.close(fd)

    def _stat(self, caller: int, fd: int, out: int, call: str) -> int:
        active = self.active()
        if not active.net.owns(fd):
            return active.forward[call](caller, fd, out)
        net = active.net
        if fd != net.first and fd not in net.slots:
            return EBADF
        kind = FILETYPE_CHARACTER_DEVICE if fd == net.first else FILETYPE_SOCKET_STREAM
        if call == "fd_fdstat_get":
            data = struct.pack("<BxHxxxxQQ", kind, net.fdstat_flags(fd), ALL_RIGHTS, ALL_RIGHTS)
        else:
            data = struct.pack("<QQBxxxxxxxQQQQQ", 0, fd, kind, 1, 0, 0, 0, 0)
        return _put(caller, active.memory, out, data)

    def fd_fdstat_get(self, caller: int, fd: int, out: int) -> int:
        return self._stat(caller, fd, out, "fd_fdstat_get")

    def fd_filestat_get(self, caller: int, fd: int, out: int) -> int:
        return self._stat(caller, fd, out, "fd_filestat_get")

    def fd_fdstat_set_flags(self, caller: int, fd: int, flags: int) -> int:
        active = self.active()
        if not active.net.owns(fd):
            return active.forward["fd_fdstat_set_flags"](caller, fd, flags)
        return SUCCESS if fd == active.net.first else active.net.set_flags(fd, flags)

    def fd_prestat_get(self, caller: int, fd: int, out: int) -> int:
        active = self.active()
        if not active.net.owns(fd):
            return active.forward["fd_prestat_get"](caller, fd, out)
        return _put(caller, active.memory, out, struct.pack("<BxxxI", PREOPEN_OTHER, 0))

    def fd_renumber(self, caller: int, fd: int, to: int) -> int:
        active = self.active()
        if not active.net.owns(fd) and not active.net.owns(to):
            active.net.stdio.pop(fd, None)  # neither number is the captured stream any more
            active.net.stdio.pop(to, None)
            return active.forward["fd_renumber"](caller, fd, to)
        return EBADF  # a slot keeps its number, and nothing else may take it

    def sock_accept(self, caller: int, fd: int, _flags: int, out: int) -> int:
        active = self.on(fd)
        if active is None:
            return ENOTSOCK
        code, new = active.net.accept(fd)
        return code or _put(caller, active.memory, out, struct.pack("<I", new))

    def sock_recv(self, caller: int, fd: int, iovs: int, count: int, flags: int, out: int,
                  out_flags: int) -> int:
        active = self.on(fd)
        if active is None or fd == active.net.first:
            return ENOTSOCK
        code = _read(caller, active.memory, active.net, fd, iovs, count, out, flags)
        return code or _put(caller, active.memory, out_flags, struct.pack("<H", 0))

    def sock_send(self, caller: int, fd: int, iovs: int, count: int, _flags: int, out: int) -> int:
        active = self.on(fd)
        if active is None or fd == active.net.first:
            return ENOTSOCK
        return _write_call(caller, active.memory, active.net, fd, iovs, count, out)

    def sock_shutdown(self, caller: int, fd: int, how: int) -> int:
        active = self.on(fd)
        if active is None or fd == active.net.first:
            return ENOTSOCK
        return active.net.shutdown(fd, how)

    def poll_oneoff(self, caller: int, subs: int, events: int, count: int, count_out: int) -> int:
        active = self.active()
        return _poll(caller, active.memory, active.net, self.deadlines, subs, events, count, count_out)

    def clock_time_get(self, caller: int, clock: int, _precision: int, out: int) -> int:
        """As wasi/clock.py's: realtime and monotonic only."""
        now = wasiclock.read_clock(clock)
        if now is None:
            return wasiclock.NOTSUP
        active = self.current.get()
        return _put(caller, active.memory if active is not None else _memory(caller), out, struct.pack("<Q", now))


def _memory(caller: int) -> rawcall.Guest:
    """The calling instance's exported memory (a call made before the run's `attach`)."""
    wrapped = wasmtime.Caller(ctypes.cast(caller, ctypes.POINTER(ffi.wasmtime_caller_t)))
    try:
        memory = wrapped.get("memory")
    finally:
        wrapped._invalidate()
    if not isinstance(memory, wasmtime.Memory):
        raise wasmtime.Trap("missing required memory export")
    return rawcall.Guest(memory)


def _put(caller: int, memory: rawcall.Guest, offset: int, data: bytes) -> int:
    return SUCCESS if memory.write(caller, offset, data) else wasiclock.FAULT


def _iovs(caller: int, memory: rawcall.Guest, iovs: int, count: int) -> list[tuple[int, int]] | None:
    if not 0 <= count <= MAX_IOVS:
        return None
    raw = memory.read(caller, iovs, 8 * count)
    if raw is None:
        return None
    return list(_IOV.iter_unpack(raw))


def _read(caller: int, memory: rawcall.Guest, net: Net, fd: int, iovs: int, count: int, out: int,
          flags: int | None) -> int:
    vectors = _iovs(caller, memory, iovs, count)
    if vectors is None:
        return wasiclock.FAULT
    size = sum(length for _, length in vectors)
    if fd == net.first:
        code, data = SUCCESS, net.control_read(size)
    else:
        code, data = net.recv(fd, size, peek=bool(flags and flags & 1))
    if code:
        return code
    done = memory.scatter(caller, vectors, data)
    if done is None:
        return wasiclock.FAULT
    return _put(caller, memory, out, _U32.pack(done))


def _write_call(caller: int, memory: rawcall.Guest, net: Net, fd: int, iovs: int, count: int,
                out: int) -> int:
    vectors = _iovs(caller, memory, iovs, count)
    if vectors is None:
        return wasiclock.FAULT
    chunks, total = [], 0
    for address, length in vectors:
        length = min(length, nethost.MAX_IO - total)
        if length <= 0:
            break
        chunk = memory.read(caller, address, length)
        if chunk is None:
            return wasiclock.FAULT
        chunks.append(chunk)
        total += length
    data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if fd == net.first:
        net.control_write(data)
        sent = len(data)
    else:
        code, sent = net.send(fd, data)
        if code:
            return code
    return _put(caller, memory, out, _U32.pack(sent))


def _stdio_write(caller: int, memory: rawcall.Guest, sink: Callable[[bytes], int], iovs: int, count: int,
                 out: int) -> int:
    """fd_write to a captured stdout/stderr, handed to its sink here, all of it, a MAX_IO piece
    at a time. Wasmtime would call the same sink from a thread of its own, handing the write
    over and back (with Python's lock) on every line a server logs."""
    vectors = _iovs(caller, memory, iovs, count)
    if vectors is None:
        return wasiclock.FAULT
    if any(memory.read(caller, address, 0) is None or memory.read(caller, address + length, 0) is None
           for address, length in vectors):
        return wasiclock.FAULT  # checked first: nothing is written by a call that faults
    written = 0
    for address, length in vectors:
        for start in range(address, address + length, nethost.MAX_IO):
            piece = memory.read(caller, start, min(nethost.MAX_IO, address + length - start))
            if piece is None:
                return wasiclock.FAULT
            sink(piece)
            written += len(piece)
    return _put(caller, memory, out, _U32.pack(written))


def _poll(caller: int, memory: rawcall.Guest, net: Net, deadlines: wasiclock.Deadlines, subs: int,
          events: int, count: int, count_out: int) -> int:
    """poll_oneoff: clocks as wasi/clock.py serves them, slots through select() on their host
    sockets, every other descriptor ready at once."""
    if count == 0 or count > wasiclock.MAX_SUBSCRIPTIONS:
        return EINVAL
    raw = memory.read(caller, subs, count * SUBSCRIPTION_SIZE)
    if raw is None:
        return wasiclock.FAULT
    ready: list[bytes] = []
    waiting: list[tuple[int, int, int]] = []  # (userdata, tag, fd) of slots, ready or not
    wake: tuple[int, int] | None = None
    for i in range(count):
        base = i * SUBSCRIPTION_SIZE
        userdata, tag = struct.unpack_from("<QB", raw, base)
        if tag == CLOCK:
            wait = wasiclock.clock_wait(raw, base)
            if wait is None:
                ready.append(wasiclock.event(userdata, wasiclock.NOTSUP, CLOCK))
            elif wake is None or wait < wake[0]:
                wake = (wait, userdata)
        elif tag in (FD_READ, FD_WRITE):
            (fd,) = struct.unpack_from("<I", raw, base + 16)
            if net.owns(fd) and fd != net.first:
                if fd not in net.slots:
                    ready.append(wasiclock.event(userdata, EBADF, tag))
                else:
                    waiting.append((userdata, tag, fd))
            else:
                ready.append(wasiclock.event(userdata, SUCCESS, tag))
        else:
            return EINVAL
    if waiting:  # the slots ready now; if no event is, a wait for the first (or the clock)
        seconds = 0.0 if ready else 365 * 86400.0 if wake is None else wake[0] / 1e9
        reads = [fd for _, tag, fd in waiting if tag == FD_READ]
        writes = [fd for _, tag, fd in waiting if tag == FD_WRITE]
        r, w = net.wait_any(reads, writes, seconds)
        for userdata, tag, fd in waiting:
            if fd in (r if tag == FD_READ else w):
                ready.append(wasiclock.event(userdata, SUCCESS, tag, 1))
        if not ready and wake is not None:
            ready.append(wasiclock.event(wake[1], SUCCESS, CLOCK))
    elif not ready and wake is not None:
        wasiclock.sleep(wake[0] / 1e9, deadlines)
        ready.append(wasiclock.event(wake[1], SUCCESS, CLOCK))
    return _put(caller, memory, events, b"".join(ready)) or _put(caller, memory, count_out, struct.pack("<I", len(ready)))


