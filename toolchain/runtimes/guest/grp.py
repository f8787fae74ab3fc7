"""boxer: CPython for WASI has no `grp` (WASI has no group database). This stand-in reads the
image's own /etc/group, as glibc's files backend does in a container."""

_FIELDS = ("gr_name", "gr_passwd", "gr_gid", "gr_mem")


class struct_group(tuple):
    """grp.struct_group: the fields of /etc/group, by index or by name."""
    n_fields = n_sequence_fields = len(_FIELDS)
    n_unnamed_fields = 0

    def __new__(cls, sequence, dict=None):
        sequence = tuple(sequence)
        if len(sequence) != len(_FIELDS):
            raise TypeError(f"grp.struct_group() takes a 4-sequence ({len(sequence)}-sequence given)")
        return super().__new__(cls, sequence)

    def __repr__(self):
        return "grp.struct_group(" + ", ".join(f"{n}={v!r}" for n, v in zip(_FIELDS, self)) + ")"

    def __reduce__(self):
        return (struct_group, (tuple(self),))


for _i, _name in enumerate(_FIELDS):
    setattr(struct_group, _name, property(lambda self, i=_i: self[i]))
struct_group.__module__ = "grp"


def getgrall():
    """Every well-formed entry of /etc/group ([] when the image has none)."""
    try:
        with open("/etc/group", encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        f = line.split(":")
        if len(f) == 4 and f[0] and f[2].isdigit():
            found.append(struct_group((f[0], f[1], int(f[2]), [m for m in f[3].split(",") if m])))
    return found


def getgrgid(id, /):
    if not isinstance(id, int):
        raise TypeError(f"'{type(id).__name__}' object cannot be interpreted as an integer")
    for entry in getgrall():
        if entry.gr_gid == id:
            return entry
    raise KeyError(f"getgrgid(): gid not found: {id}")


def getgrnam(name, /):
    if not isinstance(name, str):
        raise TypeError(f"getgrnam() argument must be str, not {type(name).__name__}")
    for entry in getgrall():
        if entry.gr_name == name:
            return entry
    raise KeyError(f"getgrnam(): name not found: {name!r}")
