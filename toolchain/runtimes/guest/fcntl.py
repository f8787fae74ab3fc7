"""boxer: CPython for WASI has no `fcntl` (WASI has no fcntl call, file locks or ioctls), but
Django, gunicorn, filelock and portalocker import it. This stand-in has CPython's names and
Linux's values, and does what WASI gives a meaning to:

- flock, lockf and fcntl's F_SETLK/F_SETLKW/F_OFD_SETLK* succeed without locking: a guest is
  one process and nothing else can open its files, so there is no other process to exclude.
  (Threads of the guest are not excluded from each other either.) F_GETLK reports no lock.
- F_GETFL reports O_NONBLOCK (the only status flag Python can read on WASI, through
  os.get_blocking); F_SETFL sets or clears it with os.set_blocking; asking to change another
  status flag (O_APPEND, O_ASYNC...) fails with ENOSYS.
- F_GETFD/F_SETFD: there is no exec in WASI, so close-on-exec has no effect: F_SETFD accepts
  it, F_GETFD reports FD_CLOEXEC.
- Everything else (ioctl, F_DUPFD, leases, signals, pipe sizes, seals) raises
  OSError(ENOSYS) saying that WebAssembly has no such call.
Every call checks its descriptor first, so a closed one fails with EBADF as on Linux."""
import errno as _errno
import os as _os
import struct as _struct

LOCK_SH, LOCK_EX, LOCK_NB, LOCK_UN = 1, 2, 4, 8
LOCK_MAND, LOCK_READ, LOCK_WRITE, LOCK_RW = 32, 64, 128, 192
F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL = 0, 1, 2, 3, 4
F_GETLK, F_SETLK, F_SETLKW, F_SETOWN, F_GETOWN, F_SETSIG, F_GETSIG = 5, 6, 7, 8, 9, 10, 11
F_GETLK64, F_SETLK64, F_SETLKW64 = 5, 6, 7
F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW = 36, 37, 38
F_RDLCK, F_WRLCK, F_UNLCK, F_EXLCK, F_SHLCK = 0, 1, 2, 4, 8
FD_CLOEXEC = 1
F_SETLEASE, F_GETLEASE, F_NOTIFY, F_DUPFD_CLOEXEC = 1024, 1025, 1026, 1030
F_SETPIPE_SZ, F_GETPIPE_SZ, F_ADD_SEALS, F_GET_SEALS = 1031, 1032, 1033, 1034
F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_WRITE = 1, 2, 4, 8
DN_ACCESS, DN_MODIFY, DN_CREATE, DN_DELETE, DN_RENAME, DN_ATTRIB = 1, 2, 4, 8, 16, 32
DN_MULTISHOT = 0x80000000
FASYNC = 0o20000

_LOCKS = (F_SETLK, F_SETLKW, F_OFD_SETLK, F_OFD_SETLKW)
_CHANGEABLE = getattr(_os, "O_APPEND", 0) | FASYNC | getattr(_os, "O_DIRECT", 0) | getattr(_os, "O_NOATIME", 0)


def _fd(fd):
    """The descriptor of an int or an object with fileno(), checked to be open (EBADF)."""
    if not isinstance(fd, int):
        fileno = getattr(fd, "fileno", None)
        if fileno is None:
            raise TypeError("argument must be an int, or have a fileno() method.")
        fd = fileno()
        if not isinstance(fd, int):
            raise TypeError("fileno() returned a non-integer")
    if fd < 0:
        raise ValueError(f"file descriptor cannot be a negative integer ({fd})")
    _os.fstat(fd)
    return fd


def _nosys(what):
    return OSError(_errno.ENOSYS, f"{what} is not available: WebAssembly (WASI) has no such call")


def fcntl(fd, cmd, arg=0, /):
    fd = _fd(fd)
    if cmd == F_GETFL:
        return 0 if _os.get_blocking(fd) else _os.O_NONBLOCK
    if cmd == F_SETFL:
        if int(arg) & _CHANGEABLE:
            raise _nosys("fcntl(F_SETFL) of a status flag other than O_NONBLOCK")
        _os.set_blocking(fd, not int(arg) & _os.O_NONBLOCK)
        return 0
    if cmd == F_GETFD:
        return FD_CLOEXEC
    if cmd == F_SETFD or cmd in _LOCKS:
        return arg if isinstance(arg, (bytes, bytearray)) else 0
    if cmd in (F_GETLK, F_OFD_GETLK) and isinstance(arg, (bytes, bytearray)) and len(arg) >= 2:
        return _struct.pack("h", F_UNLCK) + bytes(arg[2:])  # struct flock: l_type first
    raise _nosys(f"fcntl command {cmd}")


def ioctl(fd, request, arg=0, mutate_flag=True, /):
    _fd(fd)
    raise _nosys("ioctl")


def flock(fd, operation, /):
    _fd(fd)
    if operation & ~LOCK_NB not in (LOCK_SH, LOCK_EX, LOCK_UN):
        raise OSError(_errno.EINVAL, "Invalid argument")
    return None


def lockf(fd, cmd, len=0, start=0, whence=0, /):
    _fd(fd)
    if cmd & ~LOCK_NB not in (LOCK_SH, LOCK_EX, LOCK_UN):
        raise OSError(_errno.EINVAL, "Invalid argument")
    return None
