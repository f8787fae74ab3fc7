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
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from boxer_py.errors import BuildError

if TYPE_CHECKING:
    from boxer_py.image.imagefile import Image

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


def copy_tree(src: Path, dest: Path, skip: Sequence[Path] = ()) -> None:
    """Copy a tree without following any symlink in it (links are copied as links). Directories
    in `skip` (paths under `src`) are left empty."""
    skipped = set(skip)
    ignore = (lambda d, names: [n for n in names if Path(d) / n in skipped]) if skipped else None
    shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True, ignore=ignore)
    for host in skipped:
        (dest / host.relative_to(src)).mkdir(parents=True, exist_ok=True)


WHITEOUT = ".wh."  # OCI: an empty `dir/.wh.name` entry in a layer deletes `dir/name` below it


def snapshot(root: Path) -> dict[str, tuple]:
    """What identifies each entry's content and metadata, by guest path: compare two
    snapshots to learn what a program changed and deleted."""
    entries: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            host = Path(dirpath) / name
            st = host.lstat()
            link = os.readlink(host) if stat.S_ISLNK(st.st_mode) else None
            entries[within(root, host)] = (st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, link)
    return entries


def diff(before: dict[str, tuple], after: dict[str, tuple]) -> tuple[set[str], set[str]]:
    """(changed or new paths, deleted paths); a deleted directory's contents are not listed."""
    changed = {p for p, sig in after.items() if before.get(p) != sig}
    gone = set(before) - set(after)
    deleted = {p for p in gone if posixpath.dirname(p) not in gone}
    return changed, deleted


def layer_tar(root: Path, guest_paths: set[str], owners: dict[str, tuple[int, int]],
              deleted: set[str] = frozenset(), recursive: bool = True) -> bytes:
    """A reproducible tar of `guest_paths` (directories recursively, unless told not to), their
    parents, and a whiteout entry for each path in `deleted`. Every entry's mtime is fixed at
    0, in the tar and on disk, so that later steps (compileall's .pyc records its source's
    mtime) see what the image will hold."""
    names: set[str] = set()
    for g in guest_paths | {posixpath.join(posixpath.dirname(d), WHITEOUT + posixpath.basename(d)) for d in deleted}:
        parts = guest_parts(g)
        for n in range(1, len(parts) + 1):
            names.add("/".join(parts[:n]))
        host = root.joinpath(*parts)
        if recursive and host.is_dir() and not host.is_symlink():
            for dirpath, dirnames, filenames in os.walk(host):
                rel = Path(dirpath).relative_to(root).as_posix()
                names.update(f"{rel}/{n}" for n in dirnames + filenames)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(names):
            info = tarfile.TarInfo(name)
            info.mtime = 0
            if posixpath.basename(name).startswith(WHITEOUT):
                tar.addfile(info)
                continue
            host = root / name
            os.utime(host, ns=(0, 0), follow_symlinks=False)
            st = host.lstat()
            info.mode = stat.S_IMODE(st.st_mode)
            info.uid, info.gid = owners.get("/" + name, (0, 0))
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


def extract_tar(tar: tarfile.TarFile, root: Path, dest: str = "/", what: str = "archive",
                layer: bool = False) -> set[str]:
    """Extract into `root` at guest path `dest`, refusing anything that would land outside.

    Member names are guest paths relative to `dest`; parent directories that are symlinks are
    followed inside `root` only. Devices, fifos and hard links to outside names are refused.
    A `layer` also applies OCI whiteouts. Returns the guest paths written.
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
        if layer and target.name.startswith(WHITEOUT):
            if target.name == WHITEOUT + WHITEOUT + ".opq":  # opaque: the directory's old contents go
                for child in list(parent.iterdir()):
                    _remove(child)
            elif target.name[len(WHITEOUT):] not in ("", ".", ".."):
                _remove(parent / target.name[len(WHITEOUT):])
            continue
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
            os.utime(target, (m.mtime, m.mtime))
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


def apply_layer(root: Path, layer: bytes, what: str = "layer") -> dict[str, tuple[int, int]]:
    """Apply one layer tar (whiteouts included); returns the owners its entries record."""
    owners = {}
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        members = tar.getmembers()
        extract_tar(tar, root, "/", what, layer=True)
    for m in members:
        if (m.uid, m.gid) != (0, 0):
            owners[posixpath.normpath("/" + m.name)] = (m.uid, m.gid)
    return owners


def unpack(image: Image, root: Path) -> None:
    """Apply an image's layers, in order, to an empty directory."""
    for layer in image.layers:
        apply_layer(root, image.layer(layer), f"layer {layer.digest[:19]}")
