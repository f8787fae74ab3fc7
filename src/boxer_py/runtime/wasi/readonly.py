"""EROFS for writes under a read-only directory, as Docker's `:ro` mounts and `--read-only` give.

Wasmtime refuses a write under a preopen without write permission with EPERM ("Operation
not permitted"), where a Linux container's read-only mount answers EROFS ("Read-only file
system"), which is what programs test for. A run that has a read-only mount or a read-only
root gets a linker whose path calls that can write (open for writing or creating, mkdir,
rmdir, unlink, rename, link, symlink, setting times) are Python functions: each passes the
call on to Wasmtime's own function and, when the directory descriptor it names is a
read-only preopen or was opened under one, turns Wasmtime's EPERM or ENOTCAPABLE into EROFS.
Which descriptors those are is followed here: the run's read-only preopens, and every
descriptor `path_open` hands out, which inherits its directory's (a number handed out again
is overwritten; wasi-libc has no dup). Every other answer, and every call of other runs,
is Wasmtime's own.

A single-file mount (`-v ./config.yaml:/app/config.yaml[:ro]`) is a copy in the run's
writable layer (WASI preopens only directories), pinned here by its identity: before a call
that could write, replace or remove a file goes on, the file the call names is looked up by
Wasmtime itself (`path_filestat_get` from the same descriptor, with the call's own link
rule, so every `..`, link and renamed directory resolves as the call would), and a call that
lands on a pinned file is refused: any write to a `:ro` one with EROFS; removing or
replacing a writable one with EBUSY, as for a file bind-mounted into a container; linking
either with EXDEV. A hard link or a symlink the guest makes to it changes nothing, since the
identity is the file's, not its path's.

As in net/wasi.py, Wasmtime's function is reached through a trampoline: a tiny module made per
run that imports the guest's memory and Wasmtime's functions (Wasmtime's WASI reads the
calling instance's memory, so a Python function cannot call it directly).
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import wasmtime

from boxer_py.errors import RunError

WASI = "wasi_snapshot_preview1"
BUSY, NAMETOOLONG, PERM, NOTCAPABLE, ROFS, XDEV = 10, 37, 63, 76, 69, 75
CREAT, TRUNC = 1, 8                     # oflags
APPEND = 1                              # fdflags
FOLLOW = 1                              # lookupflags
WRITE_RIGHTS = (1 << 0) | (1 << 6) | (1 << 8) | (1 << 22)   # fd_datasync, fd_write, fd_allocate, fd_filestat_set_size
CALLS = {  # the path calls that may write, with their parameters (i: i32, I: i64); all answer an i32 errno
    "path_open": "iiiiiIIii", "path_create_directory": "iii", "path_remove_directory": "iii",
    "path_unlink_file": "iii", "path_rename": "iiiiii", "path_symlink": "iiiii", "path_link": "iiiiiii",
    "path_filestat_set_times": "iiiiIIi", "fd_filestat_set_times": "iIIi",
}


SCRATCH = 64                           # the lookup module's memory: the filestat, then the path
MAX_PATH = (1 << 16) - SCRATCH        # a longer path to check is refused (ENAMETOOLONG)
LOOKUP_WAT = f"""(module
  (import "{WASI}" "path_filestat_get" (func $stat (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "lookup") (param i32 i32 i32) (result i32)
    local.get 0 local.get 1 i32.const {SCRATCH} local.get 2 i32.const 0 call $stat))"""


@dataclass(frozen=True)
class Pinned:
    """A single-file mount's copy: `inside` is its path from the root preopen (in the layer,
    links resolved), `read_only` whether it was mounted `:ro`."""
    inside: str
    read_only: bool


def _types(signature: str) -> list[wasmtime.ValType]:
    return [wasmtime.ValType.i64() if c == "I" else wasmtime.ValType.i32() for c in signature]


def _wat_type(c: str) -> str:
    return "i64" if c == "I" else "i32"


def _trampoline_wat() -> str:
    imports, funcs = [], []
    for name, signature in CALLS.items():
        params = " ".join(_wat_type(c) for c in signature)
        imports.append(f'(import "{WASI}" "{name}" (func ${name} (param {params}) (result i32)))')
        gets = " ".join(f"local.get {i}" for i in range(len(signature)))
        funcs.append(f'(func (export "{name}") (param {params}) (result i32) {gets} call ${name})')
    return "(module\n" + "\n".join(imports) + '\n(import "env" "memory" (memory 0))\n(export "memory" (memory 0))\n' \
        + "\n".join(funcs) + ")"


def writes(name: str, args: tuple[int, ...]) -> bool:
    """Whether this call asks to change the file system (a plain open for reading does not)."""
    if name != "path_open":
        return True
    _fd, _dirflags, _path, _length, oflags, rights, _inheriting, fdflags, _out = args
    return bool(oflags & (CREAT | TRUNC) or rights & WRITE_RIGHTS or fdflags & APPEND)


DIRECTORY_ARGS = {"path_rename": (0, 3), "path_symlink": (2,), "path_link": (4,)}  # else the first argument


def preopens(root_read_only: bool, read_only_extras: int, mounts_read_only: list[bool]) -> set[int]:
    """The descriptor numbers of a run's read-only preopens: WASI numbers preopens from 3 in
    the order they are made (the root, the image's read-only directories, then the mounts)."""
    found = {3} if root_read_only else set()
    found.update(range(4, 4 + read_only_extras))
    found.update(4 + read_only_extras + i for i, ro in enumerate(mounts_read_only) if ro)
    return found


@dataclass(frozen=True)
class Guard:
    """What a run's read-only calls watch: its read-only preopens and its pinned files."""
    read_only: frozenset[int]
    pinned: tuple[Pinned, ...] = ()


def guard(root_read_only: bool, read_only_extras: int, mounts_read_only: list[bool],
          pinned: Sequence[Pinned] = ()) -> Guard | None:
    """A run's Guard, or None when it has nothing read-only nor pinned (the plain linker)."""
    if not (root_read_only or any(mounts_read_only) or pinned):
        return None
    return Guard(frozenset(preopens(root_read_only, read_only_extras, mounts_read_only)), tuple(pinned))


# What each call names, as (directory argument, path argument, length argument, lookupflags
# argument or None for "links not followed"), for the pinned-file check.
TARGETS: dict[str, tuple[tuple[int, int, int, int | None], ...]] = {
    "path_open": ((0, 2, 3, 1),), "path_unlink_file": ((0, 1, 2, None),),
    "path_rename": ((0, 1, 2, None), (3, 4, 5, None)), "path_link": ((0, 2, 3, 1),),
    "path_filestat_set_times": ((0, 2, 3, 1),),
}


@dataclass
class _Active:
    forward: dict[str, wasmtime.Func]
    store: wasmtime.Store
    memory: wasmtime.Memory
    read_only: set[int]   # descriptors under a read-only preopen
    lookup: wasmtime.Func | None = None   # path_filestat_get into `scratch` (pinned files only)
    scratch: wasmtime.Memory | None = None
    pinned: dict[tuple[int, int], bool] = field(default_factory=dict)  # (dev, ino) as Wasmtime says: read-only

    def identity(self, fd: int, flags: int, path: int, length: int) -> tuple[int, int] | int | None:
        """The (dev, ino) of what the guest's path names from `fd`; None if it names nothing,
        an errno if it cannot be looked up here (a path too long, outside the guest's memory)."""
        assert self.lookup is not None and self.scratch is not None
        if length > MAX_PATH:
            return NAMETOOLONG
        try:
            name = self.memory.read(self.store, path, path + length)
        except (ValueError, IndexError, wasmtime.WasmtimeError):
            return None  # Wasmtime answers the call itself with EFAULT
        self.scratch.write(self.store, name, SCRATCH)
        if self.lookup(self.store, fd, flags, length) != 0:
            return None
        stat = self.scratch.read(self.store, 0, 16)
        return int.from_bytes(stat[:8], "little"), int.from_bytes(stat[8:], "little")

    def refusal(self, name: str, args: tuple[int, ...]) -> int | None:
        """The errno for a call that would write, replace or remove a pinned file, else None."""
        if name == "path_open" and not writes(name, args):
            return None
        for fd, path, length, flags in TARGETS.get(name, ()):
            found = self.identity(args[fd], FOLLOW & args[flags] if flags is not None else 0, args[path], args[length])
            if isinstance(found, int):
                return found
            if found is None or found not in self.pinned:
                continue
            if name == "path_link":
                return XDEV
            read_only = self.pinned[found]
            if read_only:
                return ROFS
            if name in ("path_unlink_file", "path_rename"):
                return BUSY
        return None


class ReadOnlyCalls:
    """One engine's read-only path calls: `define` puts them in a linker; `attach` gives the
    calling thread's run its trampoline (after the guest is instantiated: it needs its memory)."""

    def __init__(self, engine: wasmtime.Engine):
        self.engine = engine
        self._trampoline: wasmtime.Module | None = None
        self._lookup: wasmtime.Module | None = None
        self._plain: wasmtime.Linker | None = None
        self._local = threading.local()
        self._lock = threading.Lock()

    def _made(self) -> tuple[wasmtime.Module, wasmtime.Linker]:
        with self._lock:
            if self._trampoline is None or self._plain is None:
                self._trampoline = wasmtime.Module(self.engine, bytes(wasmtime.wat2wasm(_trampoline_wat())))
                self._plain = wasmtime.Linker(self.engine)
                self._plain.define_wasi()
            return self._trampoline, self._plain

    def attach(self, store: wasmtime.Store, memory: wasmtime.Memory | None, guarded: Guard) -> None:
        """Serve this thread's run; a pinned file that cannot be found is a RunError."""
        if memory is None:  # a module without a memory cannot name a path
            self._local.active = None
            return
        trampoline, plain = self._made()
        imports: list[wasmtime.Func | wasmtime.Memory] = []
        for name in CALLS:
            func = plain.get(store, WASI, name)
            assert isinstance(func, wasmtime.Func)
            imports.append(func)
        imports.append(memory)
        exports = wasmtime.Instance(store, trampoline, imports).exports(store)
        forward = {}
        for name in CALLS:
            func = exports[name]
            assert isinstance(func, wasmtime.Func)
            forward[name] = func
        active = _Active(forward, store, memory, set(guarded.read_only))
        if guarded.pinned:
            self._pin(active, plain, guarded.pinned)
        self._local.active = active

    def _pin(self, active: _Active, plain: wasmtime.Linker, pinned: Sequence[Pinned]) -> None:
        with self._lock:
            if self._lookup is None:
                self._lookup = wasmtime.Module(self.engine, bytes(wasmtime.wat2wasm(LOOKUP_WAT)))
        wasi_stat = plain.get(active.store, WASI, "path_filestat_get")
        assert isinstance(wasi_stat, wasmtime.Func)
        exports = wasmtime.Instance(active.store, self._lookup, [wasi_stat]).exports(active.store)
        lookup, scratch = exports["lookup"], exports["memory"]
        assert isinstance(lookup, wasmtime.Func) and isinstance(scratch, wasmtime.Memory)
        active.lookup, active.scratch = lookup, scratch
        for file in pinned:
            name = file.inside.encode()
            found = None
            if len(name) <= MAX_PATH:
                scratch.write(active.store, name, SCRATCH)
                if lookup(active.store, 3, 0, len(name)) == 0:  # 3: the root preopen
                    stat = scratch.read(active.store, 0, 16)
                    found = int.from_bytes(stat[:8], "little"), int.from_bytes(stat[8:], "little")
            if found is None:
                raise RunError(f"/{file.inside}: the copy of a single-file mount cannot be found in the run")
            active.pinned[found] = active.pinned.get(found, False) or file.read_only

    def detach(self) -> None:
        self._local.active = None

    def define(self, linker: wasmtime.Linker) -> None:
        """Replace the calls in `linker`, which already has the rest of WASI."""
        linker.allow_shadowing = True
        for name, signature in CALLS.items():
            linker.define_func(WASI, name, wasmtime.FuncType(_types(signature), [wasmtime.ValType.i32()]),
                               self._call(name))
        linker.allow_shadowing = False

    def _call(self, name: str) -> Callable[..., int]:
        local = self._local

        def call(*args: int) -> int:
            active = getattr(local, "active", None)
            if active is None:
                raise wasmtime.Trap(f"{name} outside its run")
            if active.pinned and (refused := active.refusal(name, args)) is not None:
                return refused
            if name == "fd_filestat_set_times" and args[0] in active.read_only:
                return ROFS  # Wasmtime would set a read-only file's times through a descriptor
            result = active.forward[name](active.store, *args)
            if not isinstance(result, int):
                raise wasmtime.Trap(f"{name} answered no errno")
            if name == "path_open":
                if result == 0:
                    _follow(active, args[0], args[8])
                    if active.pinned and active.identity(args[0], FOLLOW & args[1], args[2], args[3]) in \
                            {k for k, read_only in active.pinned.items() if read_only}:
                        _follow(active, args[0], args[8], pinned=True)
                elif result in (PERM, NOTCAPABLE) and args[0] in active.read_only and writes(name, args):
                    return ROFS
                return result
            if result in (PERM, NOTCAPABLE) and any(args[i] in active.read_only for i in DIRECTORY_ARGS.get(name, (0,))):
                return ROFS
            return result
        return call


def _follow(active: _Active, directory: int, out: int, pinned: bool = False) -> None:
    """Note whether the descriptor `path_open` just wrote at `out` is under a read-only preopen
    (or is a `:ro` pinned file, `pinned`)."""
    opened = int.from_bytes(active.memory.read(active.store, out, out + 4), "little")
    if pinned or directory in active.read_only:
        active.read_only.add(opened)
    else:
        active.read_only.discard(opened)
