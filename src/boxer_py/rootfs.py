"""Root filesystems on the host: scoped path resolution and deterministic layer tars.

Every path that comes from a Dockerfile, a tar or an image is resolved here, as if the
rootfs were `/`: `..` stops at the root and symlinks (absolute or relative) are followed
inside it, never out of it. Layer tars are reproducible: sorted entries, fixed times.
"""
from __future__ import annotations

import io
import os
import posixpath
import shutil
import stat
import tarfile
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import BuildError

if TYPE_CHECKING:
    from .imagefile import Image

_MAX_LINKS = 40


def guest_parts(guest: str) -> list[str]:
    return [p for p in guest.split("/") if p not in ("", ".")]


def resolve(root: Path, guest: str, follow_last: bool = True) -> Path:
    """The host path of `guest` inside `root`, following symlinks the way a chroot would."""
    todo = guest_parts(guest)
    done: list[str] = []
    links = 0
    while todo:
        part = todo.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        here = root.joinpath(*done, part)
        if (todo or follow_last) and here.is_symlink():
            links += 1
            if links > _MAX_LINKS:
                raise BuildError(f"too many levels of symbolic links in {guest}")
            target = os.readlink(here)
            if target.startswith("/"):
                done = []
            todo = guest_parts(target) + todo
            continue
        done.append(part)
    return root.joinpath(*done)


def within(root: Path, host: Path) -> str:
    """The guest path of a host path that resolve() returned."""
    return "/" + host.relative_to(root).as_posix().removeprefix(".")


def copy_tree(src: Path, dest: Path) -> None:
    """Copy a tree without following any symlink in it (links are copied as links)."""
    shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True)


def layer_tar(root: Path, guest_paths: set[str], owners: dict[str, tuple[int, int]]) -> bytes:
    """A reproducible tar of `guest_paths` (directories recursively) and their parents."""
    names: set[str] = set()
    for g in guest_paths:
        parts = guest_parts(g)
        for n in range(1, len(parts) + 1):
            names.add("/".join(parts[:n]))
        host = root.joinpath(*parts)
        if host.is_dir() and not host.is_symlink():
            for dirpath, dirnames, filenames in os.walk(host):
                rel = Path(dirpath).relative_to(root).as_posix()
                names.update(f"{rel}/{n}" for n in dirnames + filenames)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(names):
            host = root / name
            st = host.lstat()
            info = tarfile.TarInfo(name)
            info.mode = stat.S_IMODE(st.st_mode)
            info.uid, info.gid = owners.get("/" + name, (0, 0))
            info.mtime = 0
            if stat.S_ISLNK(st.st_mode):
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(host)
                tar.addfile(info)
            elif stat.S_ISDIR(st.st_mode):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif stat.S_ISREG(st.st_mode):
                info.size = st.st_size
                with open(host, "rb") as f:
                    tar.addfile(info, f)
    return buf.getvalue()


def extract_tar(tar: tarfile.TarFile, root: Path, dest: str = "/", what: str = "archive") -> set[str]:
    """Extract into `root` at guest path `dest`, refusing anything that would land outside.

    Member names are guest paths relative to `dest`; parent directories that are symlinks are
    followed inside `root` only. Devices, fifos and hard links to outside names are refused.
    Returns the guest paths written.
    """
    written: set[str] = set()
    for m in tar:
        name = posixpath.normpath("/" + m.name.lstrip("/"))
        if ".." in m.name.split("/"):
            raise BuildError(f"{what}: member {m.name!r} points outside its root ('..')")
        if name == "/":
            continue
        guest = posixpath.join(dest, name.lstrip("/"))
        parent = resolve(root, posixpath.dirname(guest))
        parent.mkdir(parents=True, exist_ok=True)
        if not parent.is_dir():
            raise BuildError(f"{what}: {posixpath.dirname(guest)} is not a directory")
        target = parent / posixpath.basename(guest)
        if m.isdir():
            if target.is_symlink() or (target.exists() and not target.is_dir()):
                _remove(target)
            target.mkdir(exist_ok=True)
            os.chmod(target, m.mode & 0o7777 or 0o755)
        elif m.isfile():
            _remove(target)
            src = tar.extractfile(m)
            with open(target, "wb") as out:
                shutil.copyfileobj(src, out)
            os.chmod(target, m.mode & 0o7777)
        elif m.issym():
            _remove(target)
            os.symlink(m.linkname, target)
        elif m.islnk():
            link = posixpath.normpath("/" + m.linkname.lstrip("/"))
            if ".." in m.linkname.split("/"):
                raise BuildError(f"{what}: hard link {m.name!r} points outside its root")
            source = resolve(root, posixpath.join(dest, link.lstrip("/")), follow_last=False)
            if not source.is_file() or source.is_symlink():
                raise BuildError(f"{what}: hard link {m.name!r} to a missing file {m.linkname!r}")
            _remove(target)
            shutil.copy2(source, target)
        else:
            raise BuildError(f"{what}: member {m.name!r} is a device or fifo, which an image cannot hold")
        written.add(within(root, target))
    return written


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def unpack(image: "Image", root: Path) -> None:
    """Apply an image's layers, in order, to an empty directory."""
    for layer in image.layers:
        with tarfile.open(fileobj=io.BytesIO(image.layer(layer))) as tar:
            extract_tar(tar, root, "/", f"layer {layer.digest[:19]}")
