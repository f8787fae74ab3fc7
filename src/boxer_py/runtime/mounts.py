"""A run's -v mounts: directories become WASI preopens, a single file is copied into the
run's writable layer (WASI preopens only directories), pinned there (wasi/readonly.py: a
`:ro` one refuses writes with EROFS, neither can be removed or replaced) and, unless `:ro`,
written back to the host file when the run ends. Also what a Docker user is told when the
command they typed is a shell or a Unix utility, which no WebAssembly image has."""
from __future__ import annotations

import hashlib
import os
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from boxer_py.errors import RunError
from boxer_py.image.rootfs import resolve
from boxer_py.runtime.spec import TRAP_EXIT_CODE, Mount, RunResult
from boxer_py.runtime.wasi.readonly import Pinned

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


MAX_FILE_MOUNT = 1 << 30  # bytes of a single-file mount (it is copied, and copied back)
CHUNK = 1 << 20


@dataclass
class FileMount:
    """A single-file mount's copy in a run's layer: `held` is a descriptor of the copy opened
    before the guest starts, so what is written back is that very file (the guest can
    neither remove nor replace it), read without a path; `digest` is what was copied in."""
    mount: Mount
    inside: str   # the copy's path in the layer, links resolved
    held: int
    digest: str

    def pinned(self) -> Pinned:
        return Pinned(self.inside, self.mount.read_only)

    def close(self) -> None:
        os.close(self.held)

    def write_back(self, result: RunResult) -> None:
        """Unless `:ro`, put what the guest left in the copy into the host file (in place, as
        a bind mount's writes are), if it changed. A run stopped for writing past --disk, or a
        copy grown past MAX_FILE_MOUNT, writes nothing back, and the run's result says so."""
        if self.mount.read_only:
            return
        what = f"-v {self.mount.host}:{self.mount.guest}"
        size = os.fstat(self.held).st_size
        if result.disk_full or size > MAX_FILE_MOUNT:
            why = f"it grew past {MAX_FILE_MOUNT >> 20} MiB" if size > MAX_FILE_MOUNT else "the run wrote past --disk"
            said = f"{result.trap}; " if result.trap else ""
            result.exit_code, result.trap = TRAP_EXIT_CODE, f"{said}{what}: not written back: {why}"
            return
        if _digest(self.held) == self.digest:
            return
        try:
            target = os.open(self.mount.host, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            try:
                os.lseek(self.held, 0, os.SEEK_SET)
                written = 0
                while written < size and (chunk := os.read(self.held, min(CHUNK, size - written))):
                    os.write(target, chunk)
                    written += len(chunk)
                os.ftruncate(target, written)
            finally:
                os.close(target)
        except OSError as e:
            result.exit_code, result.trap = TRAP_EXIT_CODE, f"{what}: cannot write back ({e.strerror or e})"


def _digest(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    digest = hashlib.sha256()
    while chunk := os.read(fd, CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def copy_file(mount: Mount, root: Path) -> FileMount | None:
    """A single-file mount (`-v ./config.yaml:/app/config.yaml:ro`): WASI preopens only
    directories, so the file is copied into the run's writable layer at its guest path (the
    image's entry there, a link included, is replaced). The layer is the image's, so the
    directory is resolved inside it and the file made new (O_EXCL, O_NOFOLLOW). None for a
    directory mount (a preopen)."""
    if not mount.host.is_file():
        return None
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
        fd = os.open(target, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o444 if mount.read_only else 0o644)
        digest = hashlib.sha256()
        try:
            while chunk := os.read(source, CHUNK):
                os.write(fd, chunk)
                digest.update(chunk)
        except BaseException:
            os.close(fd)
            raise
    except OSError as e:
        raise RunError(f"{what}: cannot copy into the run ({e.strerror or e})") from None
    finally:
        os.close(source)
    return FileMount(mount, str(target.relative_to(root)), fd, digest.hexdigest())


def check(mounts: tuple[Mount, ...], root: Path, shared: Sequence[tuple[str, Path]] = ()) -> list[Mount]:
    """The mounts with their guest paths normalised and host paths resolved, each mount point
    made in the run's rootfs `root`; a bad one is a RunError naming it."""
    out = []
    for m in mounts:
        guest = posixpath.normpath(m.guest)
        if not guest.startswith("/") or guest == "/":
            raise RunError(f"-v {m.host}:{m.guest}: the guest path must be absolute and not /")
        host = m.host.resolve()
        if host.is_file():  # WASI can only preopen directories: a file is copied in (copy_file)
            if any(guest.startswith(g.rstrip("/") + "/") for g, _ in shared):
                raise RunError(f"-v {m.host}:{m.guest}: {guest} is in a read-only directory of the image")
            try:
                resolve(root, posixpath.dirname(guest)).mkdir(parents=True, exist_ok=True)
            except OSError:
                raise RunError(f"-v {m.host}:{m.guest}: {posixpath.dirname(guest)} cannot be a directory in "
                               "the image") from None
            out.append(Mount(host, guest, m.read_only, m.writable))
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
