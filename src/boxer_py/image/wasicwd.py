"""A copy of a wasi-libc command module that starts in a given working directory by itself.

wasi-libc keeps the current directory inside the guest (`__wasilibc_cwd`, found by
`image.cwdslot.find_cwd_slot`). boxer's launcher points it at the workdir from outside, before
`_start` (runtime/wasi/cwd.py). Runtimes that know nothing of boxer (runwasi's shims, the
wasmtime CLI) set no working directory, so an OCI image pushed for them carries a copy of its
program whose exported `_start` first does the launcher's steps itself: grow memory by one page,
write the directory there, point the global at it; then it calls the original `_start`.
dlmalloc never uses a page grown before it first runs (its heap ends at `__heap_end`/the
initial memory), and wasi-libc frees the old value only if it malloc'ed it, so the string stays
valid for the whole run. Nothing else in the module changes (new function, new type, the export
re-pointed), so the same module and directory always give the same bytes.
"""
from __future__ import annotations

import struct

from boxer_py.image.cwdslot import find_cwd_slot
from boxer_py.image.wasmbin import (
    CODE,
    EXPORT,
    FUNCTION,
    IMPORT,
    TYPE,
    append,
    assemble,
    count,
    export_entries,
    imports,
    sections,
    sleb,
    uleb,
)

PAGE = 65536


def _setter(directory: bytes, slot: int, start: int) -> bytes:
    """The body of `_start`'s stand-in: what `set_cwd` does from outside, then the real `_start`.

        (local $page i32)
        (if (i32.ne (local.tee $page (memory.grow (i32.const 1))) (i32.const -1))
          (then (local.set $page (i32.shl (local.get $page) (i32.const 16)))
                (i32.store offset=4k (local.get $page) (i32.const word_k))...   ;; the path, NUL-ended
                (i32.store (i32.const slot) (local.get $page))))
        (call $_start)
    """
    data = directory + b"\0" + bytes(-(len(directory) + 1) % 4)
    words = struct.unpack(f"<{len(data) // 4}i", data)
    stores = b"".join(b"\x20\x00\x41" + sleb(w) + b"\x36\x02" + uleb(4 * k) for k, w in enumerate(words))
    code = (b"\x01\x01\x7f"                              # one i32 local
            b"\x41\x01\x40\x00\x22\x00\x41\x7f\x47\x04\x40"
            b"\x20\x00\x41\x10\x74\x21\x00" + stores +
            b"\x41" + sleb(slot) + b"\x20\x00\x36\x02\x00"
            b"\x0b\x10" + uleb(start) + b"\x0b")
    return uleb(len(code)) + code


UNKNOWN = -1


def starting_in(wasm: bytes, directory: str, slot: int | None = UNKNOWN) -> bytes | None:
    """A copy of the command module `wasm` whose `_start` first points wasi-libc's working
    directory at `directory` (an absolute guest path), so it starts there under any WASI
    runtime; None if that cannot be done (no `_start`, no cwd global to be found, a malformed
    module: it comes from an image, so never a traceback). Same input, same bytes. `slot`:
    `find_cwd_slot(wasm)` when the caller has it already (image/portable.py keeps it)."""
    path = directory.encode()
    if not directory.startswith("/") or len(path) >= PAGE:
        return None
    if slot == UNKNOWN:
        slot = find_cwd_slot(wasm)
    if slot is None:
        return None
    try:
        return _with_setter(sections(wasm), path, slot)
    except (ValueError, IndexError):
        return None


def _with_setter(parts: list[tuple[int, bytes]], path: bytes, slot: int) -> bytes | None:
    payload = {sid: data for sid, data in parts if sid}
    if any(sid not in payload for sid in (TYPE, FUNCTION, CODE, EXPORT)):
        return None
    exports = export_entries(payload[EXPORT])
    starts = [index for label, kind, index in exports if label == b"_start" and kind == 0]
    if len(starts) != 1:
        return None
    new_index = imports(payload.get(IMPORT, b"")).get(0, 0) + count(payload[FUNCTION])
    entries = [uleb(len(label)) + label + bytes([kind]) + uleb(new_index if (label, kind) == (b"_start", 0) else index)
               for label, kind, index in exports]
    edits = {
        TYPE: append(payload[TYPE], b"\x60\x00\x00"),
        FUNCTION: append(payload[FUNCTION], uleb(count(payload[TYPE]))),
        CODE: append(payload[CODE], _setter(path, slot, starts[0])),
        EXPORT: uleb(len(entries)) + b"".join(entries),
    }
    return assemble([(sid, edits.get(sid, data) if sid else data) for sid, data in parts])
