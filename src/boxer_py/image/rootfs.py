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
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import TYPE_CHECKING

from boxer_py.errors import BuildError, ImageError
from boxer_py.image import hostfs, paths
from boxer_py.image.hostfs import Expansion, host_mode
from boxer_py.image.paths import guest_parts
from boxer_py.image.progress import Progress

if TYPE_CHECKING:
    from boxer_py.image.imagefile import Image



def resolve(root: Path, guest: str, follow_last: bool = True) -> Path:
    """The host path of `guest` inside `root`, following symlinks the way a chroot would."""

    def readlink(rel: str) -> str | None:
        here = root / rel
        return os.readlink(here) if here.is_symlink() else None

    try:
        return root.joinpath(*paths.resolve(guest, readlink, follow_last))
    except paths.TooManyLinks:
        raise BuildError(f"too many levels of symbolic links in {guest}") from None


def within(root: Path, host: Path) -> str:
    """The guest path of a host path that resolve() returned."""
    return "/" + host.relative_to(root).as_posix().removeprefix(".")


def copy_tree(src: Path, dest: Path, skip: Sequence[Path] = ()) -> None:
    """Copy a tree without following any symlink in it (links are copied as links). Directories
    in `skip` (paths under `src`) are left empty. Iterative and fd-relative (see hostfs)."""
    hostfs.copy_tree(src, dest, skip)
    for host in skip:  # a skipped directory missing from src is still made
        (dest / host.relative_to(src)).mkdir(parents=True, exist_ok=True)


WHITEOUT = ".wh."  # OCI: an empty `dir/.wh.name` entry in a layer deletes `dir/name` below it


MAX_GUEST_PATH = 3072  # bytes of a guest path a build records (the host adds its own prefix)


def _too_long(w: hostfs.Walker, name: str, prefix: int = 0) -> None:
    if prefix + w.length(name) > MAX_GUEST_PATH or w.depth >= hostfs.MAX_DEPTH:
        raise BuildError(f"a path in the image is longer than {MAX_GUEST_PATH} bytes or nested deeper than "
                         f"{hostfs.MAX_DEPTH} directories (/{w.path()[:60]}...)")


def snapshot(root: Path) -> dict[str, tuple]:
    """What identifies each entry's content and metadata, by guest path: compare two
    snapshots to learn what a program changed and deleted. Walks as hostfs does (a program
    may have left a tree of any depth); a path longer than MAX_GUEST_PATH is refused."""
    entries: dict[str, tuple] = {}

    def visit(w: hostfs.Walker, name: str, st: os.stat_result) -> bool:
        _too_long(w, name)
        link = os.readlink(name, dir_fd=w.fd) if stat.S_ISLNK(st.st_mode) else None
        entries["/" + w.path(name)] = (st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, link)
        return True

    hostfs.walk(root, visit)
    return entries


def diff(before: dict[str, tuple], after: dict[str, tuple]) -> tuple[set[str], set[str]]:
    """(changed or new paths, deleted paths); a deleted directory's contents are not listed."""
    changed = {p for p, sig in after.items() if before.get(p) != sig}
    gone = set(before) - set(after)
    deleted = {p for p in gone if posixpath.dirname(p) not in gone}
    return changed, deleted


def layer_tar(root: Path, guest_paths: AbstractSet[str], owners: dict[str, tuple[int, int]],
              deleted: AbstractSet[str] = frozenset(), recursive: bool = True) -> bytes:
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
            top = "/".join(parts)

            def visit(w: hostfs.Walker, name: str, st: os.stat_result, top: str = top) -> bool:
                _too_long(w, name, len(top.encode()) + 1)
                names.add(posixpath.join(top, w.path(name)))  # top is "" for the root itself
                return True

            hostfs.walk(host, visit)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(names):
            info = tarfile.TarInfo(name)
            info.mtime = 0
            if posixpath.basename(name).startswith(WHITEOUT):
                tar.addfile(info)
                continue
            host = root.joinpath(*guest_parts(name))  # never `root / "/x"`, which is the host's /x
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
                layer: bool = False, expansion: Expansion | None = None) -> set[str]:
    """Extract into `root` at guest path `dest`, refusing anything that would land outside.

    Member names are guest paths relative to `dest`; parent directories that are symlinks are
    followed inside `root` only. Devices, fifos, sparse members and hard links to outside
    names are refused; what the members would write in all is bounded by `expansion` (by
    default, hostfs.MAX_EXPANSION); host files and directories get host_mode() (no setuid,
    setgid, sticky nor group/other write, whatever a member says). A `layer` also applies
    OCI whiteouts. Returns the guest paths written. A tar that cannot be read is a BuildError.
    """
    expansion = expansion or Expansion(None, what)
    written: set[str] = set()
    try:
        for m in tar:
            _extract_member(tar, m, root, dest, what, layer, expansion, written)
    except (tarfile.TarError, EOFError) as e:
        raise BuildError(f"{what}: not a valid or complete tar ({e})") from None
    return written


def _extract_member(tar: tarfile.TarFile, m: tarfile.TarInfo, root: Path, dest: str, what: str, layer: bool,
                    expansion: Expansion, written: set[str]) -> None:
    name = posixpath.normpath("/" + m.name.lstrip("/"))
    if ".." in m.name.split("/"):
        raise BuildError(f"{what}: member {m.name!r} points outside its root ('..')")
    if name == "/":
        return
    guest = posixpath.join(dest, name.lstrip("/"))
    deeper = BuildError(f"{what}: member {m.name[:80]!r} is nested deeper than {hostfs.MAX_DEPTH} directories")
    if len(guest_parts(guest)) > hostfs.MAX_DEPTH:
        raise deeper
    parent = resolve(root, posixpath.dirname(guest))
    if len(parent.parts) - len(root.parts) >= hostfs.MAX_DEPTH:  # through symlinks
        raise deeper
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
        return
    if m.isdir():
        expansion.charge(m)
        if target.is_symlink() or (target.exists() and not target.is_dir()):
            _remove(target)
        target.mkdir(exist_ok=True)
        os.chmod(target, host_mode(m.mode or 0o755, True))
    elif m.isfile():
        expansion.charge(m)  # refuses sparse members
        _remove(target)
        src = tar.extractfile(m)
        assert src is not None  # extractfile gives None only for members that are not regular files
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with open(fd, "wb") as out:
            left = m.size
            while left > 0:
                chunk = src.read(min(left, 1 << 20))
                if not chunk:
                    raise BuildError(f"{what}: member {m.name[:80]!r} is truncated")
                out.write(chunk)
                left -= len(chunk)
            os.fchmod(out.fileno(), host_mode(m.mode))
        os.utime(target, (m.mtime, m.mtime))
    elif m.issym():
        expansion.charge(m)
        _remove(target)
        os.symlink(m.linkname, target)
    elif m.islnk():
        link = posixpath.normpath("/" + m.linkname.lstrip("/"))
        if ".." in m.linkname.split("/"):
            raise BuildError(f"{what}: hard link {m.name!r} points outside its root")
        source = resolve(root, posixpath.join(dest, link.lstrip("/")), follow_last=False)
        if not source.is_file() or source.is_symlink():
            raise BuildError(f"{what}: hard link {m.name!r} to a missing file {m.linkname!r}")
        expansion.charge(m, source.lstat().st_size)  # it becomes a copy
        _remove(target)
        shutil.copy2(source, target)
        os.chmod(target, host_mode(source.lstat().st_mode))
    else:
        raise BuildError(f"{what}: member {m.name!r} is a device or fifo, which an image cannot hold")
    written.add(within(root, target))


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir() and not hostfs.remove_tree(path):
        raise BuildError(f"{path.name}: cannot be removed")


def apply_layer(root: Path, layer: bytes, what: str = "layer") -> dict[str, tuple[int, int]]:
    """Apply one layer tar (whiteouts included); returns the owners its entries record. The
    tar is read as it is (never decompressed: a layer in an image is a plain tar), and what
    it may write is bounded by its size (hostfs.Expansion)."""
    owners = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(layer), mode="r:") as tar:
            members = tar.getmembers()
            extract_tar(tar, root, "/", what, layer=True, expansion=Expansion(len(layer), what))
    except (tarfile.TarError, EOFError) as e:
        raise BuildError(f"{what}: not a valid or complete tar ({e})") from None
    for m in members:
        if (m.uid, m.gid) != (0, 0):
            owners[posixpath.normpath("/" + m.name)] = (m.uid, m.gid)
    return owners


def unpack(image: Image, root: Path) -> None:
    """Apply an image's layers, in order, to an empty directory. A layer that cannot be
    unpacked (not a tar, truncated, a bomb, paths the host cannot hold) is an ImageError.
    Past a second, a terminal on stderr shows how long it has taken (a big image's first run)."""
    with Progress(f"unpacking image {image.id[7:19]} ({sum(d.size for d in image.layers) / 1e6:.0f} MB)"):
        for layer in image.layers:
            what = f"{image.where}: layer {layer.digest[:19]}"
            try:
                apply_layer(root, image.layer(layer), what)
            except BuildError as e:
                raise ImageError(str(e)) from None
            except OSError as e:
                raise ImageError(f"{what}: cannot be unpacked ({e.strerror or e})") from None
