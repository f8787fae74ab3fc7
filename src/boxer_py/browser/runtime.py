"""The site's copy of the image's program, made for a browser to compile quickly.

The program the image's default command runs (usually CPython, 26 MB, about half of it
debug and name sections) is written beside the image as `runtime-<sha256>.wasm` with every
custom section dropped (names, DWARF, producers: nothing a run uses). Its name is its digest,
so a host can cache it forever and the browser keeps its compiled code between visits
(Chromium caches the code of a module compiled with `compileStreaming` from a cacheable
response). The page compiles it while the image still downloads, and uses it for a program
of the image whose sha256 is `program_digest` (any other program is compiled from the image).
The working directory slot is found here, by the same finder as `boxer run`'s.

This file is part of the launcher, as trusted as `boxer.js`: the page checks the image's
blobs against the image's digests, and this file's bytes against its name.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from boxer_py.image import cwdslot, wasmbin

CUSTOM = 0


@dataclass(frozen=True)
class Runtime:
    program_digest: str  # sha256:<hex> of the program as the image holds it
    name: str  # the site's file: runtime-<hex of data>.wasm
    data: bytes  # the program without custom sections
    cwd_slot: int | None  # where its wasi-libc keeps the working directory (None: not found)

    def attributes(self) -> dict[str, str]:
        """The page's data-* attributes that describe it."""
        slot = "" if self.cwd_slot is None else str(self.cwd_slot)
        return {"runtime": self.name, "runtime-program": self.program_digest, "runtime-cwd-slot": slot}


def strip(wasm: bytes) -> bytes:
    """`wasm` without its custom sections."""
    return wasmbin.assemble([(sid, payload) for sid, payload in wasmbin.sections(wasm) if sid != CUSTOM])


def for_browser(program: bytes) -> Runtime | None:
    """The stripped runtime of `program`, or None when it is not a WebAssembly module."""
    try:
        data = strip(program)
    except (ValueError, IndexError):
        return None
    digest = hashlib.sha256(data).hexdigest()
    return Runtime("sha256:" + hashlib.sha256(program).hexdigest(), f"runtime-{digest}.wasm", data,
                   cwdslot.find_cwd_slot(data))
