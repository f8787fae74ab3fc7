"""boxer: CPython for WASI has no `pwd` (WASI has no account database). This stand-in reads
the image's own /etc/passwd, as glibc's files backend does in a container; boxer's python bases
have one with root, as Docker's python images do, and RUN useradd appends to it."""
_FIELDS = ("pw_name", "pw_passwd", "pw_uid", "pw_gid", "pw_gecos", "pw_dir", "pw_shell")


class struct_passwd(tuple):
    """pwd.struct_passwd: the fields of /etc/passwd, by index or by name."""
    n_fields = n_sequence_fields = len(_FIELDS)
    n_unnamed_fields = 0

    def __new__(cls, sequence, dict=None):
        sequence = tuple(sequence)
        if len(sequence) != len(_FIELDS):
            raise TypeError(f"pwd.struct_passwd() takes a 7-sequence ({len(sequence)}-sequence given)")
        return super().__new__(cls, sequence)

    def __repr__(self):
        return "pwd.struct_passwd(" + ", ".join(f"{n}={v!r}" for n, v in zip(_FIELDS, self)) + ")"

    def __reduce__(self):
        return (struct_passwd, (tuple(self),))


for _i, _name in enumerate(_FIELDS):
    setattr(struct_passwd, _name, property(lambda self, i=_i: self[i]))
struct_passwd.__module__ = "pwd"


def getpwall():
    """Every well-formed entry of /etc/passwd ([] when the image has none)."""
    try:
        with open("/etc/passwd", encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        f = line.split(":")
        if len(f) == 7 and f[0] and f[2].isdigit() and f[3].isdigit():
            found.append(struct_passwd((f[0], f[1], int(f[2]), int(f[3]), f[4], f[5], f[6])))
    return found


def getpwuid(uid, /):
    if not isinstance(uid, int):
        raise TypeError(f"'{type(uid).__name__}' object cannot be interpreted as an integer")
    for entry in getpwall():
        if entry.pw_uid == uid:
            return entry
    raise KeyError(f"getpwuid(): uid not found: {uid}")


def getpwnam(name, /):
    if not isinstance(name, str):
        raise TypeError(f"getpwnam() argument must be str, not {type(name).__name__}")
    for entry in getpwall():
        if entry.pw_name == name:
            return entry
    raise KeyError(f"getpwnam(): name not found: {name!r}")
