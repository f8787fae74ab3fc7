"""Whether boxer's own code changed on disk since the run server (server.py) loaded it: a
server must not serve runs with code older than what a `boxer` started now would load.

The server watches its package's directories through inotify from before it imports the
CLI, so a client need not stat every source file on each run to tell (that was a millisecond
of every served run). The kernel queues an event when a file changes, before the writing call
returns, so a change made before a client connected is in the queue when the server reads its
request. Where inotify cannot be had (its limits reached), the server compares the name,
mtime and size of every source file at each request instead.
"""
from __future__ import annotations

import ctypes
import os
import struct

IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE = 0x2, 0x4, 0x8
IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x40, 0x80, 0x100, 0x200
IN_DELETE_SELF, IN_MOVE_SELF, IN_Q_OVERFLOW, IN_IGNORED, IN_ISDIR = 0x400, 0x800, 0x4000, 0x8000, 0x40000000
WATCHED = (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
           | IN_DELETE_SELF | IN_MOVE_SELF)
GONE = IN_DELETE_SELF | IN_MOVE_SELF | IN_Q_OVERFLOW | IN_IGNORED  # a watched directory or file itself, or lost events
SOURCES = (".py", ".toml")
EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len (then the name)


def stamp(package: str) -> list[tuple[str, int, int]]:
    """Name, mtime and size of every source file of the package (its own tree: a linked file
    is followed, a linked directory is not), sorted."""
    found, pending = [], [package]
    while pending:
        folder = pending.pop()
        for entry in os.scandir(folder):
            if entry.is_dir(follow_symlinks=False) and entry.name != "__pycache__":
                pending.append(entry.path)
            elif entry.name.endswith(SOURCES):
                info = entry.stat()
                found.append((entry.path[len(package):], info.st_mtime_ns, info.st_size))
    return sorted(found)


class CodeWatch:
    """Watches the source files of `package` (what `stamp` covers) from its creation on;
    `changed()` says whether any was changed, added, removed or renamed since."""

    def __init__(self, package: str):
        self.package = package
        self.fd: int | None = None
        self.files: set[int] = set()  # watches of linked files (any event on them is a change)
        self.seen = False
        try:
            self.fd = self._watch(package)
        except OSError:
            self.fd = None
        self.stamp = stamp(package) if self.fd is None else None

    @staticmethod
    def _libc() -> ctypes.CDLL:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.inotify_init1.argtypes = [ctypes.c_int]
        libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        return libc

    def _watch(self, package: str) -> int:
        libc = self._libc()
        fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        try:
            pending = [package]
            while pending:
                folder = pending.pop()
                self._add(libc, fd, folder)
                for entry in os.scandir(folder):
                    if entry.is_dir(follow_symlinks=False) and entry.name != "__pycache__":
                        pending.append(entry.path)
                    elif entry.is_symlink() and entry.name.endswith(SOURCES):  # its target: not in a watched directory
                        self.files.add(self._add(libc, fd, entry.path))
        except BaseException:
            os.close(fd)
            raise
        return fd

    @staticmethod
    def _add(libc: ctypes.CDLL, fd: int, path: str) -> int:
        wd = libc.inotify_add_watch(fd, os.fsencode(path), WATCHED)
        if wd < 0:
            raise OSError(ctypes.get_errno(), "inotify_add_watch", path)
        return wd

    def changed(self) -> bool:
        """Whether the package's code changed since the watch began (once True, always)."""
        if self.seen:
            return True
        if self.fd is None:
            self.seen = stamp(self.package) != self.stamp
            return self.seen
        while not self.seen:
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                break
            except OSError:
                self.seen = True  # cannot tell any more: as if changed
                break
            self.seen = any(self._relevant(*event) for event in _events(data))
        return self.seen

    def _relevant(self, wd: int, mask: int, name: bytes) -> bool:
        if mask & GONE or wd in self.files:
            return True
        if not name:
            return False  # a directory's own attributes
        if mask & IN_ISDIR:
            return name != b"__pycache__"  # the bytecode cache Python writes is not code
        return name.endswith(tuple(s.encode() for s in SOURCES))

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _events(data: bytes) -> list[tuple[int, int, bytes]]:
    """(watch, mask, name) of each inotify_event in `data`."""
    events, offset = [], 0
    while offset + EVENT.size <= len(data):
        wd, mask, _, size = EVENT.unpack_from(data, offset)
        start = offset + EVENT.size
        events.append((wd, mask, data[start:start + size].split(b"\0", 1)[0]))
        offset = start + size
    return events
