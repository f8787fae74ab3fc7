"""Starting a WASI program in a working directory.

wasi-libc emulates the current directory inside the guest: it keeps it in the global
`__wasilibc_cwd` (initially a pointer to the string "/"), ignores PWD, and resolves every
relative path against it. No WASI call sets it, and CPython turns a relative script path
into an absolute one before any Python code runs, so the launcher sets it from outside:

1. find the global (`image/cwdslot.py`, shared with the standalone export): the data word
   pointing at the string "/" that code references by address.
2. after instantiation, before `_start`: grow memory by one page, write the directory there,
   and point the global at it. dlmalloc never uses a page grown before it first runs (its
   heap ends at `__heap_end`/the initial memory), and wasi-libc frees the old value only if
   it malloc'ed it, so the string stays valid for the whole run.

This works for any program linked with wasi-libc, whatever its language, with no change to
the module. A module where the global cannot be found (another libc) is run from "/".
wasi-libc resolves relative paths against that directory only in programs that link its
`chdir`; in one that does not (a small C program), getcwd() reports the workdir but relative
paths still resolve against "/", which no launcher can change without editing the module.
"""
from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from boxer_py.image.cwdslot import FINDER_VERSION, find_cwd_slot

__all__ = ["FINDER_VERSION", "find_cwd_slot", "set_cwd"]

_PAGE = 65536

if TYPE_CHECKING:
    import wasmtime


def set_cwd(store: wasmtime.Store, memory: wasmtime.Memory, slot: int, directory: str) -> None:
    """Point the guest's current directory at `directory` (call before `_start`)."""
    data = directory.encode() + b"\0"
    if len(data) > _PAGE:
        raise ValueError("working directory path too long")
    address = memory.grow(store, 1) * _PAGE
    memory.write(store, data, address)
    memory.write(store, struct.pack("<I", address), slot)
