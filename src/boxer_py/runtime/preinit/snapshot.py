"""A pre-initialised CPython: start each run from a snapshot of an interpreter that has
already started, instead of paying its start-up (tens of milliseconds inside Wasm) every time.

This is Wizer's idea done from the outside, with the image's module left as it is:

1. `resumable(wasm)`: the module plus two exports, its stack pointer (global 0, as wasm-ld
   lays modules out) and `boxer:call(callable, args, nargs, fn)`, which calls a C function
   of the guest through its function table. Nothing else changes; it is compiled once.
2. `boot_argv`: a run of `python -c <preinit_guest.boot>` in the run's sandbox. The guest
   readies a namespace, an inbox and the tuple `(code, namespace)`, prints where they are
   (CPython's `id()` is an address) and exits. `capture` then keeps the linear memory pages
   that start-up changed and the stack pointer: the `Snapshot`.
3. `restore` + `call`: a fresh instance of the same module gets those pages back, the run's
   request (argv, env, cwd) in the inbox, and a call to the `exec` builtin's vectorcall
   with that tuple. `preinit_guest.resume` does what CPython's main does with a command
   line and ends the process with the program's exit code.

Every run still gets an instance of its own, in which no guest code ran before: what one run
does cannot reach the next (`readdress` puts another request in place of the one `restore`
wrote, for a run made ready ahead and given another command: cli/ahead.py). A snapshot
is made for one image, program and start-up environment (`startup_env`): the variables
CPython reads while it starts are part of its key; the boot run gets those and the image's
own ENV, nothing else, so nothing of one run's environment is kept for another. An image
may name modules to import before the snapshot (label `boxer.preimport`): they see the
image's ENV, not a run's `-e` changes. Runs that CPython
would start differently (options before the command, the REPL, stdin as the script, a mount
over /usr, /lib, /etc or PYTHONPATH: `over_python`) take the ordinary path; other mounts
resume, the boot having preopened empty directories at the same guest paths, so the restored
descriptor table is the run's. All runs from one snapshot share its str hash seed.
"""
from __future__ import annotations

import ctypes
import hashlib
import json
import os
import re
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import wasmtime

from boxer_py.image.imagefile import write
from boxer_py.image.wasmbin import (
    CODE,
    EXPORT,
    FUNCTION,
    GLOBAL,
    IMPORT,
    TYPE,
    append,
    assemble,
    count,
    imports,
    name,
    read_uleb,
    sections,
    uleb,
)

LABEL = "boxer.preinit:"       # boxer.preinit:/usr/local/bin/python3.12 = cpython
PREIMPORT_LABEL = "boxer.preimport"  # boxer.preimport = "numpy pandas"
KIND = "cpython"
STACK_POINTER, CALL = "boxer:stack_pointer", "boxer:call"
PAGE = 4096                    # the granularity at which changed memory is kept
VERSION = 1                    # bumped when the snapshot's layout changes (the guest code is hashed)
GUEST_SOURCE = Path(__file__).with_name("guest.py")    # a run's boot and resume
KERNEL_SOURCE = Path(__file__).with_name("kernel.py")  # an Interpreter's boot and calls (runtime/interpreter.py)
PRELUDE_SOURCE = Path(__file__).with_name("prelude.py")  # what both boots do first
_LIBC: ctypes.CDLL | None
try:
    _LIBC = ctypes.CDLL(None)
    _LIBC.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
except (OSError, AttributeError, TypeError):
    _LIBC = None
STARTUP_PREFIXES = ("PYTHON", "LC_")
STARTUP_NAMES = ("LANG", "TZ", "HOME", "PATH")


def resumable(wasm: bytes) -> bytes:
    """`wasm` with the stack pointer and `boxer:call` exported (custom sections dropped)."""
    parts = [p for p in sections(wasm) if p[0] != 0]
    payload = dict(parts)
    if any(sid not in payload for sid in (TYPE, FUNCTION, GLOBAL, EXPORT, CODE)):
        raise ValueError("not a module preinit knows: a section is missing")
    imported = imports(payload.get(IMPORT, b""))
    i32 = b"\x7f"
    # wasm-ld's layout: global 0 is the stack pointer, a mutable i32 of the module's own.
    if imported.get(3) or payload[GLOBAL][read_uleb(payload[GLOBAL], 0)[1]:][:2] != i32 + b"\x01":
        raise ValueError("not a module preinit knows: global 0 is not a stack pointer")
    if name("memory") + b"\x02" not in payload[EXPORT]:
        raise ValueError("not a module preinit knows: no exported memory")
    type_index = count(payload[TYPE])
    function_index = imported.get(0, 0) + count(payload[FUNCTION])
    # (func (param i32 i32 i32 i32) (result i32)
    #   local.get 0, local.get 1, local.get 2, i32.const 0 (kwnames), local.get 3,
    #   call_indirect (type $vectorcall) (table 0))
    body = b"\x00" + b"\x20\x00\x20\x01\x20\x02\x41\x00\x20\x03\x11" + uleb(type_index) + b"\x00\x0b"
    edits = {
        TYPE: append(payload[TYPE], b"\x60" + uleb(4) + i32 * 4 + uleb(1) + i32),
        FUNCTION: append(payload[FUNCTION], uleb(type_index)),
        CODE: append(payload[CODE], uleb(len(body)) + body),
        EXPORT: append(payload[EXPORT], name(STACK_POINTER) + b"\x03\x00",
                       name(CALL) + b"\x00" + uleb(function_index)),
    }
    return assemble([(sid, edits.get(sid, data)) for sid, data in parts])


def startup_env(env: Mapping[str, str]) -> dict[str, str]:
    """The variables CPython reads while it starts (so the snapshot depends on them)."""
    return {k: v for k, v in sorted(env.items()) if k.startswith(STARTUP_PREFIXES) or k in STARTUP_NAMES}


def program(labels: Mapping[str, str]) -> str | None:
    """The guest path of the image's CPython, if its base says it can be pre-initialised."""
    found = [key[len(LABEL):] for key, value in labels.items() if key.startswith(LABEL) and value == KIND]
    return found[0] if len(found) == 1 else None


def eligible(argv: Sequence[str]) -> bool:
    """Whether CPython would start for `argv` exactly as it did for the snapshot: no options
    before `-c CODE`, `-m MODULE` or a script, and a script is not `-` (stdin)."""
    if len(argv) < 2:
        return False
    if argv[1] in ("-c", "-m"):
        return len(argv) >= 3 and (argv[1] == "-c" or argv[2] != "")
    return not argv[1].startswith("-") and argv[1] != ""


def code_digest(source: Path = GUEST_SOURCE) -> str:
    """Part of every snapshot's key: a snapshot is only good with the guest code that made it
    (the prelude and `source`)."""
    return hashlib.sha256(PRELUDE_SOURCE.read_bytes() + b"\0" + source.read_bytes()).hexdigest()


def preimports(labels: Mapping[str, str]) -> list[str]:
    """The modules an image's `boxer.preimport` label names (space- or comma-separated),
    imported once before the snapshot is taken; names that are not module paths are dropped."""
    names = labels.get(PREIMPORT_LABEL, "").replace(",", " ").split()
    return [n for n in names if re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", n)]


def boot_argv(argv0: str, preimport: Sequence[str] = (), source: Path = GUEST_SOURCE,
              namespace: str = "_boxer") -> list[str]:
    """The boot run's `python -c`: the prelude, then `source` (guest.py, or the interpreter's
    kernel.py), in one namespace of their own (nothing lands in `__main__`), then its `boot`."""
    code = "".join(f"exec(compile({path.read_text()!r}, '<boxer>', 'exec'), _g); " for path in (PRELUDE_SOURCE, source))
    return [argv0, "-c", f"import builtins as _b; _g = {{'__builtins__': _b, '__name__': {namespace!r}}}; "
            f"{code}_g['boot']({list(preimport)!r})"]


@dataclass(frozen=True)
class Snapshot:
    memory_size: int
    pages: tuple[tuple[int, int], ...]   # (address, length): the runs of memory start-up changed,
    data: bytearray | memoryview         # whose bytes follow one another here (writable)
    stack_pointer: int
    callable: int          # the exec builtin
    args: int              # its arguments: the items of the tuple (code, namespace)
    function: int          # exec's vectorcall: an index into the function table
    inbox: int
    inbox_size: int
    digest: str = ""       # the sha256 of the saved file's body: what a baked module is keyed by

    FIELDS = ("memory_size", "pages", "stack_pointer", "callable", "args", "function", "inbox", "inbox_size")

    def to_bytes(self) -> bytes:
        header = json.dumps({k: getattr(self, k) for k in self.FIELDS}).encode()
        return struct.pack("<I", len(header)) + header + bytes(self.data)

    @classmethod
    def from_bytes(cls, data: bytearray | memoryview) -> Snapshot:
        """Parse `data`, keeping a view of it (no copy): it must be writable, as ctypes wants."""
        size = struct.unpack_from("<I", data)[0]
        head = json.loads(bytes(data[4:4 + size]))
        pages = tuple((int(a), int(n)) for a, n in head.pop("pages"))
        body = memoryview(data)[4 + size:]
        return check(cls(pages=pages, data=body, **head))


def check(snapshot: Snapshot) -> Snapshot:
    """`snapshot`, if every number in it (a guest's report and memory) lies within its memory,
    as `restore` writes there: else ValueError. The memory a whole number of wasm pages up to
    4 GiB, the changed runs sorted, apart and inside, the stack pointer and the inbox inside."""
    size = snapshot.memory_size
    if not (isinstance(size, int) and 0 < size <= 1 << 32 and size % 65536 == 0):
        raise ValueError(f"snapshot memory size {size!r} is not a whole number of wasm pages")
    end = 0
    for address, length in snapshot.pages:
        if address < end or length <= 0 or address % PAGE or address + length > size:
            raise ValueError("snapshot pages overlap or lie outside its memory")
        end = address + length
    if sum(n for _, n in snapshot.pages) != len(snapshot.data):
        raise ValueError("snapshot pages and data disagree")
    for value in (snapshot.stack_pointer, snapshot.inbox, snapshot.inbox_size, snapshot.inbox + snapshot.inbox_size):
        if not (isinstance(value, int) and 0 <= value <= size):
            raise ValueError("the snapshot's stack pointer or inbox lies outside its memory")
    return snapshot


def save(path: Path, snapshot: Snapshot) -> Snapshot:
    """Write `snapshot` with a sha256 of it at the end (atomically); it, with that digest."""
    data = snapshot.to_bytes()
    digest = hashlib.sha256(data).digest()
    path.parent.mkdir(parents=True, exist_ok=True)
    write(path, data + digest)
    return replace(snapshot, digest=digest.hex())


def load(path: Path) -> Snapshot | None:
    """The snapshot saved at `path`, or None if there is none or it fails its checksum."""
    try:
        with open(path, "rb") as f:
            data = bytearray(os.fstat(f.fileno()).st_size)
            if f.readinto(data) != len(data) or len(data) < 36:
                return None
        body = memoryview(data)[:-32]
        if hashlib.sha256(body).digest() != data[-32:]:
            return None
        return replace(Snapshot.from_bytes(body), digest=data[-32:].hex())
    except (OSError, ValueError, KeyError, TypeError, struct.error):
        return None


_Kind = TypeVar("_Kind")


def export_of(exports: Mapping[str, object], name: str, kind: type[_Kind]) -> _Kind:
    """The export `name` of a resumable module, of the kind `resumable` made it or checked
    it is; TypeError if it is not (a module that only looked like one preinit knows)."""
    item = exports[name]
    if not isinstance(item, kind):
        raise TypeError(f"the module's {name!r} export is not a {kind.__name__}")
    return item


def memory_of(store: wasmtime.Store, memory: wasmtime.Memory) -> bytes:
    return ctypes.string_at(ctypes.addressof(memory.data_ptr(store).contents), memory.data_len(store))


def capture(memory: bytes, stack_pointer: int, stdout: bytes, initial: bytes) -> Snapshot:
    """The snapshot of an instance whose boot run has just exited (its memory and stack
    pointer then), against `initial`, the module's memory before any code ran. Raises
    ValueError if what the guest printed does not check out against its memory."""
    try:
        return _capture(memory, stack_pointer, stdout, initial)
    except (KeyError, IndexError, TypeError, struct.error, UnicodeDecodeError) as e:
        raise ValueError(f"the boot run's report does not check out ({e!r})") from None


def _capture(memory: bytes, stack_pointer: int, stdout: bytes, initial: bytes) -> Snapshot:
    report = json.loads(stdout.decode().strip().splitlines()[-1])
    word = lambda address: struct.unpack_from("<I", memory, address)[0]
    exec_object, args, inbox = report["exec"], report["args"], report["inbox"]
    # PyCFunctionObject: refcnt, type, m_ml, m_self, m_module, m_weakreflist, vectorcall
    method = word(exec_object + 8)
    if memory[word(method):word(method) + 5] != b"exec\0":
        raise ValueError("the exec builtin is not where the guest said")
    # PyTupleObject: refcnt, type, size, (a cached hash since 3.14), items
    items = [args + offset for offset in (12, 16) if word(args + 8) == 2
             and [word(args + offset), word(args + offset + 4)] == report["items"]]
    if not items:
        raise ValueError("the call's arguments are not where the guest said")
    # PyByteArrayObject: refcnt, type, size, alloc, bytes, start, exports
    if word(inbox + 8) != report["size"] or word(inbox + 12) < report["size"] or word(inbox + 16) != word(inbox + 20):
        raise ValueError("the inbox is not where the guest said")
    pages, data = changed(memory, initial)
    return check(Snapshot(memory_size=len(memory), pages=pages, data=data,
                          stack_pointer=stack_pointer, callable=exec_object,
                          args=items[0], function=word(exec_object + 24), inbox=word(inbox + 20),
                          inbox_size=report["size"]))


def changed(memory: bytes, initial: bytes) -> tuple[tuple[tuple[int, int], ...], bytearray]:
    """The runs of PAGE-sized pages of `memory` that differ from `initial`, and their bytes."""
    padded = initial + bytes(len(memory) - len(initial))
    pages: list[tuple[int, int]] = []
    data = bytearray()
    for address in range(0, len(memory), PAGE):
        chunk = memory[address:address + PAGE]
        if chunk == padded[address:address + PAGE]:
            continue
        if pages and sum(pages[-1]) == address:
            pages[-1] = (pages[-1][0], pages[-1][1] + len(chunk))
        else:
            pages.append((address, len(chunk)))
        data += chunk
    return tuple(pages), data


def request(argv: Sequence[str], env: Mapping[str, str], workdir: str) -> bytes:
    fields = [workdir, str(len(argv)), *argv, *(f"{k}={v}" for k, v in env.items())]
    data = "\0".join(fields).encode("utf-8", "surrogateescape")
    return struct.pack("<I", len(data)) + data


def _prefault(base: int, pages: Sequence[tuple[int, int]]) -> None:
    """Ask Linux (5.14+) to make the pages about to be written present in one call each
    (MADV_POPULATE_WRITE), rather than one fault per 4 KiB page: a third off the copy. Where
    that is not available the copy simply takes its faults."""
    madvise = getattr(_LIBC, "madvise", None)
    if madvise is None:
        return
    for address, length in pages:
        start = (base + address) & ~(PAGE - 1)
        if madvise(start, base + address + length - start, 23) != 0:
            return


def restore(store: wasmtime.Store, exports: Mapping[str, object], snapshot: Snapshot,
            message: bytes, baked: bool = False, before: list[bytes] | None = None) -> Callable[[], int] | None:
    """Make a fresh instance the snapshot, with `message` (from `request`) in its inbox, and
    return how to start it; None if its memory cannot grow to the snapshot's size (a cap).
    `baked`: the instance is of the snapshot's baked module (preinit.bake), already the
    snapshot: only the message is written. `before` is given the snapshot's own bytes that the
    message covers (for readdress)."""
    memory = export_of(exports, "memory", wasmtime.Memory)
    missing = snapshot.memory_size - memory.data_len(store)
    if missing > 0:
        try:
            memory.grow(store, -(-missing // 65536))
        except wasmtime.WasmtimeError:
            return None
    base = ctypes.addressof(memory.data_ptr(store).contents)
    if not baked:
        _prefault(base, snapshot.pages)
        source = ctypes.addressof(ctypes.c_char.from_buffer(snapshot.data))
        for address, length in snapshot.pages:
            ctypes.memmove(base + address, source, length)
            source += length
        export_of(exports, STACK_POINTER, wasmtime.Global).set_value(store, snapshot.stack_pointer)
    if before is not None:
        before.append(ctypes.string_at(base + snapshot.inbox, len(message)))
    ctypes.memmove(base + snapshot.inbox, message, len(message))
    call = export_of(exports, CALL, wasmtime.Func)

    def start() -> int:
        call(store, snapshot.callable, snapshot.args, 2, snapshot.function)
        raise wasmtime.WasmtimeError("the pre-initialised interpreter returned instead of exiting")
    return start


def readdress(store: wasmtime.Store, memory: wasmtime.Memory, snapshot: Snapshot, before: bytes,
              message: bytes) -> None:
    """Put `message` in the inbox of an instance restore() made with another message over
    `before` (what it gave back), no guest code having run since: its memory is then what
    restore() of `message` makes of a fresh instance, byte for byte."""
    if len(message) > snapshot.inbox_size or snapshot.inbox + snapshot.inbox_size > memory.data_len(store):
        raise ValueError("the message does not fit the snapshot's inbox")
    base = ctypes.addressof(memory.data_ptr(store).contents)
    ctypes.memmove(base + snapshot.inbox, before, len(before))
    ctypes.memmove(base + snapshot.inbox, message, len(message))


def at_root(store: wasmtime.Store, memory: wasmtime.Memory, slot: int, snapshot: Snapshot) -> bool:
    """Whether wasi-libc's current directory (the pointer at `slot`) is still the module's own
    "/" string, as a boot that never changed directory leaves it: a "/" on a page the boot did
    not write (a chdir's would be malloc'ed: wasi-libc would free it at the next chdir). Then
    the launcher may point it at a run's workdir as it does before `_start` (wasi/cwd.py), and
    the guest skips its `os.chdir` (a host call that stats the directory)."""
    size = memory.data_len(store)
    if not 0 <= slot <= size - 4:
        return False
    address = int.from_bytes(memory.read(store, slot, slot + 4), "little")
    if not 0 <= address <= size - 2 or memory.read(store, address, address + 2) != b"/\0":
        return False
    return not any(start <= address < start + length for start, length in snapshot.pages)


PYTHON_DIRS = ("/usr", "/lib", "/lib64", "/etc")  # where a CPython's own files and site-packages live


def over_python(points: Sequence[str], startup: Mapping[str, str]) -> bool:
    """Whether a mount covers (or is inside) a directory CPython reads while it starts: the
    boot of a snapshot saw an empty directory there (site-packages' .pth files, PYTHONPATH)."""
    dirs = [*PYTHON_DIRS, *(d for d in startup.get("PYTHONPATH", "").split(":") if d.startswith("/")),
            *([startup["PYTHONHOME"]] if startup.get("PYTHONHOME", "").startswith("/") else [])]
    return any(p == d or p.startswith(d.rstrip("/") + "/") or d.startswith(p.rstrip("/") + "/")
               for p in points for d in dirs)
