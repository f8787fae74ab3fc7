"""A run's -v mounts: directories become WASI preopens, a single file is copied into the
run's writable layer (WASI preopens only directories). Also what a Docker user is told when
the command they typed is a shell or a Unix utility, which no WebAssembly image has."""
from __future__ import annotations

import os
import posixpath
from collections.abc import Sequence
from pathlib import Path

from boxer_py.errors import RunError
from boxer_py.image.rootfs import resolve
from boxer_py.runtime.spec import Mount

SHELLS = frozenset({"sh", "bash", "ash", "dash", "zsh", "ksh", "fish", "busybox"})
UTILITIES = frozenset({"ls", "cat", "env", "ps", "pwd", "echo", "cp", "mv", "rm", "mkdir", "find", "grep", "top",
                       "head", "tail", "less", "more", "vi", "vim", "nano", "id", "whoami", "which", "apt-get", "apk",
                       "curl", "wget"})


def no_shell_hint(name: str) -> str:
    """What to add to "NAME: not found" when NAME is a shell or a Unix utility."""
    if posixpath.basename(name) in SHELLS:
        return (": a WebAssembly image has no shell; run a program of the image instead, e.g. "
                "`python -c CODE`, or `-it IMAGE python` for an interactive Python")
    if posixpath.basename(name) in UTILITIES:
        return (": a WebAssembly image has no shell nor Unix utilities; use the image's own programs, "
                "e.g. `python -c \"import os; print(os.listdir())\"`")
    return ""


MAX_FILE_MOUNT = 1 << 30  # bytes of a single-file mount (it is copied)


def copy_file(mount: Mount, root: Path) -> bool:
    """A single-file mount (`-v ./config.yaml:/app/config.yaml:ro`): WASI preopens only
    directories, so the file is copied into the run's writable layer at its guest path (the
    image's entry there, a link included, is replaced; the host file is never written). The
    layer is the image's, so the directory is resolved inside it and the file made new
    (O_EXCL, O_NOFOLLOW). False for a directory mount (a preopen)."""
    if not mount.host.is_file():
        return False
    parent = resolve(root, posixpath.dirname(mount.guest))  # inside the layer, whatever links are on the way
    target = parent / posixpath.basename(mount.guest)  # a link there is replaced, as the mount hides it
    what = f"-v {mount.host}:{mount.guest}"
    try:
        source = os.open(mount.host, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise RunError(f"{what}: cannot read {mount.host} ({e.strerror or e})") from None
    try:
        if os.fstat(source).st_size > MAX_FILE_MOUNT:
            raise RunError(f"{what}: a single-file mount is copied, and this one is over {MAX_FILE_MOUNT >> 20} MiB; "
                           "mount its directory instead")
        if target.is_dir() and not target.is_symlink():
            raise RunError(f"{what}: {mount.guest} is a directory in the image")
        parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink() or target.exists():
            target.unlink()  # never written in place: it may share its inode with the cached image
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o444)
        try:
            while chunk := os.read(source, 1 << 20):
                os.write(fd, chunk)
        finally:
            os.close(fd)
    except OSError as e:
        raise RunError(f"{what}: cannot copy into the run ({e.strerror or e})") from None
    finally:
        os.close(source)
    return True


def check(mounts: tuple[Mount, ...], root: Path, shared: Sequence[tuple[str, Path]] = ()) -> list[Mount]:
    """The mounts with their guest paths normalised and host paths resolved, each mount point
    made in the run's rootfs `root`; a bad one is a RunError naming it."""
    out = []
    for m in mounts:
        guest = posixpath.normpath(m.guest)
        if not guest.startswith("/") or guest == "/":
            raise RunError(f"-v {m.host}:{m.guest}: the guest path must be absolute and not /")
        host = m.host.resolve()
        if host.is_file():  # WASI can only preopen directories: a file is copied in (_copy_file_mount)
            if any(guest.startswith(g.rstrip("/") + "/") for g, _ in shared):
                raise RunError(f"-v {m.host}:{m.guest}: {guest} is in a read-only directory of the image")
            if m.writable:
                raise RunError(f"-v {m.host}:{m.guest}: a single file is given to the guest as a copy, never "
                               "written back: mount its directory to let the guest change it")
            try:
                resolve(root, posixpath.dirname(guest)).mkdir(parents=True, exist_ok=True)
            except OSError:
                raise RunError(f"-v {m.host}:{m.guest}: {posixpath.dirname(guest)} cannot be a directory in "
                               "the image") from None
            out.append(Mount(host, guest, True))
            continue
        if not host.is_dir():
            raise RunError(f"-v {m.host}:{m.guest}: {m.host} is not a directory or file"
                           f"{'' if host.exists() else ' (it does not exist)'}")
        # Under a shared read-only directory the image's content is in the cache, not in root.
        mountpoint = resolve(root, guest)
        in_cache = [(h, resolve(h, guest[len(g):])) for g, h in shared if guest.startswith(g.rstrip("/") + "/")]
        for _top, point in [*in_cache, (root, mountpoint)]:
            if point.is_symlink() or (point.exists() and not point.is_dir()):
                raise RunError(f"-v {m.host}:{m.guest}: {guest} is not a directory in the image")
        if any(p.is_file() for top, point in in_cache for p in point.parents if top in p.parents):
            raise RunError(f"-v {m.host}:{m.guest}: {guest} cannot be a directory in the image "
                           "(a parent of it is a file)")
        try:
            mountpoint.mkdir(parents=True, exist_ok=True)
        except OSError:
            raise RunError(f"-v {m.host}:{m.guest}: {guest} cannot be a directory in the image "
                           "(a parent of it is a file)") from None
        out.append(Mount(host, guest, m.read_only))
    return out
