"""boxer: CPython for WASI has no `grp` (WASI has no group database). This stand-in reads the
image's own /etc/group, as glibc's files backend does in a container."""
import sys as _sys

from _boxer_accounts import find as _find
from _boxer_accounts import struct as _struct
from _boxer_accounts import table as _table

struct_group = _struct("grp", "struct_group", ("gr_name", "gr_passwd", "gr_gid", "gr_mem"))


def getgrall():
    """Every well-formed entry of /etc/group ([] when the image has none)."""
    return [struct_group((f[0], f[1], int(f[2]), [m for m in f[3].split(",") if m]))
            for f in _table("/etc/group", 4)]


def getgrgid(id, /):
    if not isinstance(id, int):
        if _sys.version_info >= (3, 10):
            raise TypeError(f"'{type(id).__name__}' object cannot be interpreted as an integer")
        # as 3.9's grp: a warning, then the id as int() reads it (3.10 made it an error)
        import warnings
        warnings.warn(f"group id must be int, not {type(id).__name__}", DeprecationWarning, stacklevel=2)
        id = int(id)
    return _find(getgrall(), "getgrgid(): gid not found", "gr_gid", id)


def getgrnam(name, /):
    if not isinstance(name, str):
        raise TypeError(f"getgrnam() argument must be str, not {type(name).__name__}")
    if "\0" in name:  # as CPython's, which hands the name to C
        raise ValueError("embedded null character")
    return _find(getgrall(), "getgrnam(): name not found", "gr_name", name)
