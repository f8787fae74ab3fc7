"""Files into a rootfs, for COPY/ADD and RUN's bind mounts: one entry at a time, no recursion,
no link followed, only regular files read (a FIFO or device is refused without blocking)."""
from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import stat
from pathlib import Path

from boxer_py.dockerfile.plan import ImageBase
from boxer_py.errors import BuildError
from boxer_py.image import imagefile
from boxer_py.image.rootfs import apply_layer, resolve, within


def image_layers(image: ImageBase) -> list[bytes]:
    """The layers of a local image, read (and digest-checked) from its file."""
    read = imagefile.read(image.path)
    if read.id != image.id:
        raise BuildError(f"{image.ref}: the image changed while building; build again")
    return [read.layer(d) for d in read.layers]


def image_root(image: ImageBase, scratch: Path) -> Path:
    """A local image unpacked in the build's `scratch` directory, once per build."""
    root = scratch / ("image-" + image.id.split(":")[-1])
    if not root.is_dir():
        root.mkdir()
        for layer in image_layers(image):
            apply_layer(root, layer)
    return root


_MAX_HOST_PATH = 4000  # below Linux's PATH_MAX: deeper is refused, not a traceback


def walk_plain(top: Path) -> list[tuple[Path, str]]:
    """(host path, path relative to `top`) under a directory of a stage or an image, without
    recursion (a guest can make trees thousands of levels deep) and without following links."""
    out: list[tuple[Path, str]] = []
    todo = [""]
    while todo:
        rel_dir = todo.pop()
        with os.scandir(top / rel_dir if rel_dir else top) as it:
            entries = sorted((e.name, e.is_dir(follow_symlinks=False)) for e in it)
        subdirs = []
        for name, is_dir in entries:
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if len(str(top)) + len(rel) > _MAX_HOST_PATH:
                raise BuildError(f"{rel[:80]}...: a path too long to copy ({len(rel)} characters)")
            out.append((top / rel, rel))
            if is_dir:
                subdirs.append(rel)
        todo.extend(reversed(subdirs))
    return out


def ensure_dir(root: Path, guest: str, fail) -> Path:
    host = resolve(root, guest)
    if host.exists() and not host.is_dir():
        fail(f"destination {guest} exists and is not a directory")
    host.mkdir(parents=True, exist_ok=True)
    return host


def place(src: Path, root: Path, guest: str, fail, mode: int | str | None) -> str:
    """Copy one file, directory entry or symlink to `guest` inside `root`; return where it landed."""
    parent = resolve(root, posixpath.dirname(guest))
    if parent.exists() and not parent.is_dir():
        fail(f"cannot copy to {guest}: {posixpath.dirname(guest)} is not a directory")
    parent.mkdir(parents=True, exist_ok=True)
    target = parent / posixpath.basename(guest)
    if src.is_symlink():
        if target.is_symlink() or target.is_file():
            target.unlink()
        os.symlink(os.readlink(src), target)
    elif src.is_dir():
        if target.is_symlink() or target.is_file():
            target.unlink()
        target.mkdir(exist_ok=True)
        os.chmod(target, apply_mode(mode, src.stat().st_mode, True))
    else:
        if target.is_symlink():
            target.unlink()
        elif target.is_dir():
            fail(f"cannot copy the file {src.name} over the directory {guest}")
        copy_regular(src, target, fail)
        os.chmod(target, apply_mode(mode, src.stat().st_mode, False))
    return within(root, target)


def copy_regular(src: Path, target: Path, fail) -> None:
    """Copy a regular file; a FIFO, socket or device (from the context or an image) is refused
    without blocking on it or reading it forever."""
    try:
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        fail(f"{src.name}: cannot read it ({e.strerror}); only files, directories and symlinks can be copied")
    with os.fdopen(fd, "rb") as source:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            fail(f"{src.name}: is not a regular file; only files, directories and symlinks can be copied")
        with open(target, "wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)


_WHO = {"u": 0o4700, "g": 0o2070, "o": 0o1007}
_PERM = {"r": 0o444, "w": 0o222, "x": 0o111, "s": 0o6000, "t": 0o1000}


def _symbolic(mode: str, old: int, is_dir: bool) -> int:
    """chmod(1)'s symbolic modes (u+x, go=rX, a-w...), applied to `old`, without a umask."""
    for clause in mode.split(","):
        i = 0
        while i < len(clause) and clause[i] in "ugoa":
            i += 1
        who = sum({_WHO[w] for w in (clause[:i].replace("a", "ugo") or "ugo")})
        op, perms = clause[i], clause[i + 1:]
        bits = 0
        for p in perms:
            if p == "X":
                bits |= 0o111 if is_dir or old & 0o111 else 0
            else:
                bits |= _PERM[p]
        bits &= who
        if op == "+":
            old |= bits
        elif op == "-":
            old &= ~bits
        else:
            old = (old & ~(who & 0o777 | (who & 0o6000 if "s" in perms or op == "=" else 0))) | bits
    return old & 0o7777


def apply_mode(mode: int | str | None, src_mode: int, is_dir: bool) -> int:
    if mode is None:
        return src_mode & 0o7777
    if isinstance(mode, int):
        return mode
    return _symbolic(mode, src_mode & 0o7777, is_dir)


_DIGEST_CHUNK = 1 << 20


def file_digest(path: Path) -> str:
    """The sha256 (hex) of a regular file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_DIGEST_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
