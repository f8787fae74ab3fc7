"""Files handed to a run without a mount: put into its private writable layer before the guest
starts (`files=` in the API, `boxer run --file HOST:GUEST`), and read or listed there between
an Interpreter's calls.

The layer is the guest's: by the time an Interpreter's files are read it may hold symlinks,
FIFOs or a sparse terabyte. Every access here walks the guest path one component at a time
from the layer's root with O_NOFOLLOW, so a symlink anywhere on the way is refused rather
than followed, and reads are bounded (hostfs.read_bounded).
"""
from __future__ import annotations

import errno
import os
import posixpath
import stat
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from boxer_py.errors import RunError
from boxer_py.image import hostfs

MAX_FILES_BYTES = 256 << 20  # bytes of input files per run, in all, unless --disk is smaller
MAX_FILES = 10_000
MAX_PATH = 1024  # bytes of one guest path
MAX_LISTED = 10_000


def check(files: Mapping[str, bytes | str] | Iterable[tuple[str, bytes | str]], limit: int | None = None,
          ) -> tuple[tuple[str, bytes], ...]:
    """Guest paths made canonical and contents as bytes; RunError naming the first path that
    is not absolute, has a `..`, a NUL or is too long, or when there are too many or too large
    files (`limit` bytes in all; MAX_FILES_BYTES without one)."""
    items = list(files.items() if isinstance(files, Mapping) else files)
    budget = MAX_FILES_BYTES if limit is None else min(limit, MAX_FILES_BYTES)
    if len(items) > MAX_FILES:
        raise RunError(f"files: {len(items)} files, at most {MAX_FILES}")
    out: list[tuple[str, bytes]] = []
    total = 0
    for guest, content in items:
        path = guest_path(guest)
        data = content.encode() if isinstance(content, str) else bytes(content)
        total += len(data)
        if total > budget:
            raise RunError(f"files: {guest}: input files over {budget} bytes in all")
        out.append((path, data))
    return tuple(out)


def guest_path(guest: object) -> str:
    """An absolute guest path without `..`, NUL or empty parts, normalised; else RunError."""
    if not isinstance(guest, str) or not guest.startswith("/") or "\0" in guest or len(guest.encode()) > MAX_PATH:
        raise RunError(f"files: {guest!r}: a guest path must be absolute, without NUL, at most {MAX_PATH} bytes")
    if ".." in guest.split("/"):
        raise RunError(f"files: {guest}: a guest path cannot contain '..'")
    path = posixpath.normpath(guest)
    if path == "/" or path.startswith("//"):
        raise RunError(f"files: {guest}: not a file path")
    return path


def place(root: Path, files: Sequence[tuple[str, bytes]], elsewhere: Sequence[str] = ()) -> None:
    """Write `files` (from check) into the layer `root`; `elsewhere`: guest directories that
    are not the layer (mounts, read-only shared directories), where nothing can be put."""
    for path, data in files:
        for other in elsewhere:
            if path == other or path.startswith(other.rstrip("/") + "/"):
                raise RunError(f"files: {path}: under {other}, which is not the run's writable layer")
        parent = _open_parent(root, path, create=True)
        try:
            fd = os.open(posixpath.basename(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
                         | os.O_CLOEXEC | os.O_NONBLOCK, 0o644, dir_fd=parent)
        except OSError as e:
            raise RunError(f"files: {path}: cannot be written in the image ({_why(e)})") from None
        finally:
            os.close(parent)
        with open(fd, "wb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise RunError(f"files: {path}: not a regular file in the image")
            f.write(data)


def read(root: Path, guest: str, limit: int) -> bytes:
    """The content of the regular file `guest` in the layer, at most `limit` bytes."""
    path = guest_path(guest)
    parent = _open_parent(root, path, create=False)
    try:
        return hostfs.read_file(posixpath.basename(path), limit, dir_fd=parent)
    except hostfs.Unreadable as e:
        raise RunError(f"{path}: {e}") from None
    finally:
        os.close(parent)


def listing(root: Path, guest: str, limit: int = MAX_LISTED) -> dict[str, tuple[int, int]]:
    """{guest path: (size, mtime in ns)} of the regular files under the directory `guest` (any depth, no
    symlink followed), at most `limit` of them."""
    path = guest_path(guest) if guest != "/" else "/"
    fd = _open_dir(root, path)
    found: dict[str, tuple[int, int]] = {}
    prefix = path.rstrip("/")

    class Enough(Exception):
        pass

    def visit(w: hostfs.Walker, name: str, st: os.stat_result) -> bool:
        if stat.S_ISREG(st.st_mode):
            if len(found) >= limit:
                raise Enough
            found[hostfs_name(prefix + "/" + w.path(name))] = (st.st_size, st.st_mtime_ns)
        return stat.S_ISDIR(st.st_mode)

    try:
        hostfs.walk(".", visit, dir_fd=fd, onerror=lambda _e: None)
    except Enough:
        pass
    finally:
        os.close(fd)
    return dict(sorted(found.items()))


def hostfs_name(name: str) -> str:
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _open_dir(root: Path, path: str) -> int:
    try:
        return hostfs.open_dirs(root, path.split("/"))
    except OSError as e:
        raise RunError(f"{path}: not a directory in the sandbox ({_why(e)})") from None


def _open_parent(root: Path, path: str, create: bool) -> int:
    """An open fd of `path`'s directory, reached from `root` without following a symlink;
    missing directories are made (0o755) when `create`."""
    try:
        return hostfs.open_dirs(root, posixpath.dirname(path).split("/"), make=create)
    except FileNotFoundError:
        raise RunError(f"{path}: no such file") from None
    except OSError as e:
        raise RunError(f"{path}: a parent is not a directory or cannot be made ({_why(e)})") from None


def _why(error: OSError) -> str:
    if error.errno == errno.ELOOP:
        return "a symbolic link, which is not followed"
    return error.strerror or str(error)
