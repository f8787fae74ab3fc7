"""boxer: CPython for WASI has no `pwd` (WASI has no account database). This stand-in reads
the image's own /etc/passwd, as glibc's files backend does in a container; boxer's python bases
have one with root, as Docker's python images do, and RUN useradd appends to it."""
from _boxer_accounts import find as _find
from _boxer_accounts import struct as _struct
from _boxer_accounts import table as _table

struct_passwd = _struct("pwd", "struct_passwd",
                        ("pw_name", "pw_passwd", "pw_uid", "pw_gid", "pw_gecos", "pw_dir", "pw_shell"))


def getpwall():
    """Every well-formed entry of /etc/passwd ([] when the image has none)."""
    return [struct_passwd((f[0], f[1], int(f[2]), int(f[3]), *f[4:])) for f in _table("/etc/passwd", 7)
            if f[3].isdigit()]


def getpwuid(uid, /):
    if not isinstance(uid, int):
        raise TypeError(f"'{type(uid).__name__}' object cannot be interpreted as an integer")
    return _find(getpwall(), "getpwuid(): uid not found", "pw_uid", uid)


def getpwnam(name, /):
    if not isinstance(name, str):
        raise TypeError(f"getpwnam() argument must be str, not {type(name).__name__}")
    if "\0" in name:  # as CPython's, which hands the name to C
        raise ValueError("embedded null character")
    return _find(getpwall(), "getpwnam(): name not found", "pw_name", name)
