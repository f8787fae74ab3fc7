"""Host-side walks over trees that a guest, an image or a tar shaped: the one place they go.

Such a tree is hostile: it may be thousands of directories deep (deeper than PATH_MAX, deeper
than Python's recursion limit), hold names that are not UTF-8, and directories its owner
cannot enter. Every walk here is iterative and relative to directory descriptors (openat with
O_NOFOLLOW|O_DIRECTORY), never by path string and never recursive; a symlink is never
followed. At most FD_WINDOW directories are held open at once whatever the depth: an
ancestor's descriptor is closed on the way down and opened again on the way up through
"..", checked to be the same directory (device and inode).

    walk(root, visit, ...)      the engine: visit(walker, name, stat) per entry
    tree_usage(root, ...)       what the disk quota counts (runtime.runwatch)
    remove_tree(path)           removal of run layers, spares, unpack leftovers; never raises
    copy_tree(src, dest, ...)   the per-run copy of a rootfs; modes made safe (host_mode)
    host_mode(mode, is_dir)     the mode a host file may carry
    Expansion                   the bound on what unpacking a tar may write
"""
from __future__ import annotations

import errno
import os
import stat
import tarfile
from collections.abc import Callable, Sequence
from pathlib import Path

from boxer_py.errors import BoxerError, BuildError

FD_WINDOW = 48  # directory descriptors a walk holds open at most (per tree it walks)
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
NOATIME = getattr(os, "O_NOATIME", 0)

# Unpacking: a tar member is written as big as it says, so a layer could expand without
# bound through hard links (each one a copy) or sparse members (holes written dense). Sparse
# members are refused; what a tar may write in all is bounded by its own size.
MAX_EXPANSION = 4 << 30  # bytes one unpack may write, whatever the tar's size
EXPANSION_RATIO = 16  # ... and at most this many times the tar's own size
EXPANSION_SLACK = 64 << 20  # ... plus this
MAX_MEMBERS = 1 << 20  # entries one tar may hold
# Directories an image's tree may nest: deeper trees are refused where they are made (unpack,
# a build's snapshot), so no tool that walks an image's tree recursively (shutil.rmtree, a
# test runner's clean-up) meets one. Guest-made trees can still be of any depth: hostfs walks.
MAX_DEPTH = 256


class _Frame:
    __slots__ = ("fds", "ids", "dirs", "name", "length")

    def __init__(self, fds: list[int], name: str, length: int):
        self.fds = fds  # this directory's descriptor, then the consumer's parallel ones (-1: closed)
        self.ids = [(st.st_dev, st.st_ino) for st in map(os.fstat, fds)]
        self.dirs: list[str] = []  # subdirectories still to enter
        self.name = name
        self.length = length  # bytes of the path from the root, "/"-joined


class Walker:
    """Where a walk is, for its callbacks: `fd` is the directory holding the entry visited."""

    def __init__(self, stack: list[_Frame]):
        self._stack = stack
        self._open = 0  # stack index of the first frame whose descriptors are open

    @property
    def fd(self) -> int:
        return self._stack[-1].fds[0]

    def companion(self, i: int = 1) -> int:
        """The consumer's own descriptor for this directory (see walk's `companions`)."""
        return self._stack[-1].fds[i]

    @property
    def depth(self) -> int:
        """0 for entries of the root itself."""
        return len(self._stack) - 1

    def length(self, name: str) -> int:
        """Bytes of the path of `name` (in the directory being visited) from the root."""
        top = self._stack[-1].length
        return top + (1 if top else 0) + len(os.fsencode(name))

    def path(self, name: str = "") -> str:
        """The "/"-joined path of `name` from the root: O(depth), so bound it with length()."""
        return "/".join([f.name for f in self._stack[1:]] + ([name] if name else []))


Visit = Callable[[Walker, str, os.stat_result], bool]  # see walk
Companions = tuple[list[int], Callable[[Walker, str], list[int]]]  # see walk


def _open_dir(name: str, dir_fd: int | None, flags: int, fix: bool) -> int:
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except PermissionError:
        if flags & NOATIME:  # O_NOATIME is only for the owner's files
            return _open_dir(name, dir_fd, flags & ~NOATIME, fix)
        if not fix:
            raise
        # a directory its owner may not enter (an image said 0o000): make it enterable
        os.chmod(name, 0o700, dir_fd=dir_fd)  # it is a directory (lstat said so) in a tree at rest
        return os.open(name, flags, dir_fd=dir_fd)


def walk(root: str | Path, visit: Visit, *, companions: Companions | None = None,
         leave: Callable[[Walker, str], None] | None = None, done: Callable[[Walker], None] | None = None,
         onerror: Callable[[OSError], None] | None = None, noatime: bool = False, fix_modes: bool = False,
         dir_fd: int | None = None) -> None:
    """Visit every entry under `root` (not root itself), each directory's entries before
    its subdirectories' (no order otherwise).

    visit(walker, name, stat) gets each entry's lstat; for a directory it says whether to
    enter it. `companions` = (the root's, open(walker, name)): descriptors of the consumer's
    own that go along with each directory entered (copy_tree's destination), opened in the
    parent when entering and closed by the walk. done(walker) is called in a directory right
    before it is closed, leave(walker, name) in its parent right after. Errors raise, unless
    onerror is given: it is told, and the directory that failed is skipped. fix_modes makes
    directories their owner cannot read or enter enterable (removal needs that). With
    `dir_fd`, `root` is a name in that directory."""
    flags = DIR_FLAGS | (NOATIME if noatime else 0)
    fd = _open_dir(str(root), dir_fd, flags, fix_modes)
    stack = [_Frame([fd, *(companions[0] if companions else [])], "", 0)]
    walker = Walker(stack)
    try:
        _scan(stack[-1], walker, visit, fix_modes)
        while stack:
            top = stack[-1]
            if top.dirs:
                name = top.dirs.pop()
                try:
                    _enter(stack, walker, name, visit, flags, fix_modes, companions)
                except OSError as e:
                    if onerror is None:
                        raise
                    onerror(e)
                continue
            if done is not None:
                done(walker)
            stack.pop()
            try:
                if stack:
                    _reopen(stack[-1], top)
                    walker._open = min(walker._open, len(stack) - 1)
            finally:
                _close(top)
            if stack and leave is not None:
                leave(walker, top.name)
    finally:
        for frame in stack:
            _close(frame)


def _close(frame: _Frame) -> None:
    for i, f in enumerate(frame.fds):
        if f >= 0:
            os.close(f)
            frame.fds[i] = -1


def _enter(stack: list[_Frame], walker: Walker, name: str, visit: Visit, flags: int, fix: bool,
           companions: Companions | None) -> None:
    parent = stack[-1]
    fd = _open_dir(name, parent.fds[0], flags, fix)
    try:
        theirs = companions[1](walker, name) if companions else []
    except BaseException:
        os.close(fd)
        raise
    try:
        frame = _Frame([fd, *theirs], name, walker.length(name))
    except BaseException:
        for f in [fd, *theirs]:
            os.close(f)
        raise
    stack.append(frame)
    if len(stack) - walker._open > FD_WINDOW:
        _close(stack[walker._open])  # opened again through ".." on the way up (see _reopen)
        walker._open += 1
    try:
        _scan(frame, walker, visit, fix)
    except OSError:
        stack.pop()
        try:
            _reopen(parent, frame)
            walker._open = min(walker._open, len(stack) - 1)
        finally:
            _close(frame)
        raise


def _scan(frame: _Frame, walker: Walker, visit: Visit, fix: bool) -> None:
    if fix:
        st = os.fstat(frame.fds[0])
        if st.st_mode & 0o700 != 0o700:
            os.fchmod(frame.fds[0], stat.S_IMODE(st.st_mode) | 0o700)
    with os.scandir(frame.fds[0]) as entries:
        for entry in entries:
            st = entry.stat(follow_symlinks=False)
            if visit(walker, entry.name, st) and stat.S_ISDIR(st.st_mode):
                frame.dirs.append(entry.name)


def _reopen(parent: _Frame, child: _Frame) -> None:
    """Open `parent` again from `child` (through ".."), if the window closed it."""
    for i, f in enumerate(parent.fds):
        if f >= 0:
            continue
        fd = os.open("..", DIR_FLAGS, dir_fd=child.fds[i])
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != parent.ids[i]:
            os.close(fd)
            raise OSError(errno.ESTALE, "the tree changed while it was walked")
        parent.fds[i] = fd


def host_mode(mode: int, is_dir: bool = False) -> int:
    """The permission bits a host file or directory may carry, whatever the image or guest
    asked for: no setuid, setgid or sticky bit, no group or other write; its owner may read
    it (and enter and change a directory), so that copies and removal never fail."""
    return (stat.S_IMODE(mode) & 0o755) | (0o700 if is_dir else 0o400)


def tree_usage(root: str | Path, entry_min: int) -> int:
    """Bytes under `root` as a disk quota counts them: each entry's apparent size (a sparse
    terabyte is a terabyte), at least `entry_min`. Raises OSError if any part of the tree
    cannot be read: a caller must count that as over any limit, never as nothing."""
    total = 0

    def visit(_w: Walker, _name: str, st: os.stat_result) -> bool:
        nonlocal total
        total += max(st.st_size, entry_min) if not stat.S_ISDIR(st.st_mode) else entry_min
        return True

    walk(root, visit)
    return total


def open_dirs(root: str | Path, parts: Sequence[str], make: bool = False) -> int:
    """An open fd of the directory `root`/`parts`..., reached one component at a time without
    following a link (a guest may have made any of them one); a missing component is made
    (0755) when `make`. Raises OSError: ELOOP for a link, ENOENT/ENOTDIR as the path is."""
    fd = os.open(root, DIR_FLAGS)
    try:
        for part in parts:
            if not part:
                continue
            try:
                child = os.open(part, DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not make:
                    raise
                os.mkdir(part, 0o755, dir_fd=fd)
                child = os.open(part, DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


class NotRegular(Exception):
    """read_bounded's file is a directory, FIFO, socket or device (`mode` says which)."""

    def __init__(self, mode: int):
        super().__init__(stat.filemode(mode))
        self.mode = mode


class TooLarge(Exception):
    """read_bounded's file is (or grew) larger than its limit; `size` as far as it is known."""

    def __init__(self, size: int):
        super().__init__(size)
        self.size = size


def read_bounded(fd: int, limit: int) -> bytes:
    """The whole content of the open file `fd`, which must be a regular file of at most `limit`
    bytes: its size is checked before a byte is read (a sparse file can claim a terabyte), and
    reading stops past the limit should it grow meanwhile. Open it with O_NONBLOCK (a FIFO is
    then refused here, never waited on) and O_NOFOLLOW. The one place small hostile files
    (.dockerignore, requirements, what a source build leaves, what RUN's utilities read) are read."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise NotRegular(st.st_mode)
    if st.st_size > limit:
        raise TooLarge(st.st_size)
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = os.read(fd, min(1 << 20, limit + 1 - size))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise TooLarge(size)


class Unreadable(Exception):
    """read_file's file cannot be read as a small regular file; str() says why, worded to follow
    the file's name ("does not exist", "is a link", "is not a regular file", "is larger than N
    bytes"). `opened`: whether the file could be opened at all; `missing`: whether it is simply
    absent (a caller may take that as "none")."""

    def __init__(self, why: str, opened: bool, missing: bool = False):
        super().__init__(why)
        self.opened = opened
        self.missing = missing


def read_file(path: str | Path, limit: int, dir_fd: int | None = None, follow: bool = False) -> bytes:
    """The whole content of the regular file `path` (a name in `dir_fd` if given), at most
    `limit` bytes, never blocking on a FIFO nor following a link at its last component (unless
    `follow`: a path the user named on the host): how host code reads one small file from a
    context, an image, a guest's layer or the user's command line."""
    try:
        fd = os.open(path, FILE_FLAGS & ~os.O_NOFOLLOW if follow else FILE_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        raise Unreadable("does not exist", opened=False, missing=True) from None
    except OSError as e:
        why = "is a link" if e.errno == errno.ELOOP else f"cannot be read ({e.strerror})"
        raise Unreadable(why, opened=False) from None
    try:
        return read_bounded(fd, limit)
    except NotRegular:
        raise Unreadable("is not a regular file", opened=True) from None
    except TooLarge:
        raise Unreadable(f"is larger than {limit} bytes", opened=True) from None
    finally:
        os.close(fd)


def remove_tree(path: str | Path, dir_fd: int | None = None) -> bool:
    """Remove `path` (a name in `dir_fd` if given) and everything under it, however deep or
    oddly permitted; never raises. Returns whether it is gone."""
    try:
        st = os.lstat(path, dir_fd=dir_fd)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    try:
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(path, dir_fd=dir_fd)
            return True

        def visit(w: Walker, name: str, st: os.stat_result) -> bool:
            if stat.S_ISDIR(st.st_mode):
                return True
            try:
                os.unlink(name, dir_fd=w.fd)
            except FileNotFoundError:
                pass
            return False

        def leave(w: Walker, name: str) -> None:
            os.rmdir(name, dir_fd=w.fd)

        walk(path, visit, leave=leave, onerror=lambda e: None, fix_modes=True, dir_fd=dir_fd)
        os.rmdir(path, dir_fd=dir_fd)
        return True
    except OSError:
        return False


def copy_tree(src: str | Path, dest: str | Path, skip: Sequence[str | Path] = ()) -> None:
    """Copy the tree at `src` to `dest` (made if missing; entries already there are replaced).
    Symlinks are copied as links, never followed; times are kept; modes go through host_mode;
    fifos, sockets and devices are left out. Directories in `skip` (host paths under `src`)
    are made empty."""
    src = Path(src)
    skipped = {Path(p).relative_to(src).as_posix() for p in skip}
    deepest = max((s.count("/") for s in skipped), default=-1)
    os.makedirs(dest, exist_ok=True)
    root_dest = os.open(dest, DIR_FLAGS)

    def visit(w: Walker, name: str, st: os.stat_result) -> bool:
        to = w.companion()
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            try:
                os.mkdir(name, 0o700, dir_fd=to)
            except FileExistsError:
                if not stat.S_ISDIR(os.lstat(name, dir_fd=to).st_mode):
                    os.unlink(name, dir_fd=to)
                    os.mkdir(name, 0o700, dir_fd=to)
            if skipped and w.depth <= deepest and w.path(name) in skipped:
                os.chmod(name, host_mode(mode, True), dir_fd=to)
                return False
            return True
        if stat.S_ISLNK(mode):
            target = os.readlink(name, dir_fd=w.fd)
            _replace(name, to)
            os.symlink(target, name, dir_fd=to)
        elif stat.S_ISREG(mode):
            _replace(name, to)
            _copy_file(name, w.fd, to, st)
        else:
            return False  # no image holds one, and a guest cannot make one
        os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=to, follow_symlinks=False)
        return False

    def open_dest(w: Walker, name: str) -> list[int]:
        return [os.open(name, DIR_FLAGS, dir_fd=w.companion())]

    def done(w: Walker) -> None:
        st = os.fstat(w.fd)
        os.fchmod(w.companion(), host_mode(st.st_mode, True))
        os.utime(w.companion(), ns=(st.st_atime_ns, st.st_mtime_ns))

    walk(src, visit, companions=([root_dest], open_dest), done=done)


def _replace(name: str, dir_fd: int) -> None:
    try:
        st = os.lstat(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        if not remove_tree(name, dir_fd):
            raise OSError(errno.ENOTEMPTY, f"cannot replace the directory {name!r}")
    else:
        os.unlink(name, dir_fd=dir_fd)


def _copy_file(name: str, src_fd: int, dest_fd: int, st: os.stat_result) -> None:
    fin = os.open(name, FILE_FLAGS, dir_fd=src_fd)
    try:
        fout = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                       0o600, dir_fd=dest_fd)
        try:
            left = st.st_size
            while left > 0:
                try:
                    n = os.copy_file_range(fin, fout, left)
                except OSError as e:
                    if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                        raise
                    n = os.sendfile(fout, fin, None, left)
                if n == 0:
                    break
                left -= n
            os.fchmod(fout, host_mode(st.st_mode))
        finally:
            os.close(fout)
    finally:
        os.close(fin)


class Expansion:
    """What unpacking one tar may write: charge() each member before it is written. Sparse
    members are refused (their holes would be written dense: a 10 KB member can say 1 TiB);
    hard links count as the copies they become; the total is bounded by the tar's size (see
    expansion_limit) and by MAX_EXPANSION, and the member count by MAX_MEMBERS."""

    def __init__(self, tar_size: int | None, what: str, error: type[BoxerError] = BuildError):
        self.limit = expansion_limit(tar_size)
        self.what, self.error = what, error
        self.written = 0
        self.members = 0
        self.sizes: dict[str, int] = {}  # regular members' sizes, for hard links to them

    def charge(self, m: tarfile.TarInfo, linked: int | None = None) -> None:
        """`linked`: for a hard link, the size of the file it copies, if known."""
        self.members += 1
        if self.members > MAX_MEMBERS:
            raise self.error(f"{self.what}: more than {MAX_MEMBERS} members")
        if m.issparse() or m.type == tarfile.GNUTYPE_SPARSE:
            raise self.error(f"{self.what}: member {m.name[:80]!r} is a sparse file, which an image cannot hold")
        size = 0
        if m.isfile():
            size = m.size
            self.sizes[m.name.lstrip("/")] = size
        elif m.islnk():
            size = linked if linked is not None else self.sizes.get(m.linkname.lstrip("/"), 0)
        self.written += size
        if self.written > self.limit:
            raise self.error(f"{self.what}: expands past {self.limit} bytes (hard links or sizes out of "
                             "proportion to the archive)")


def expansion_limit(tar_size: int | None) -> int:
    if tar_size is None:
        return MAX_EXPANSION
    return min(MAX_EXPANSION, tar_size * EXPANSION_RATIO + EXPANSION_SLACK)
