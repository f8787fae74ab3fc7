"""boxer: what the pwd and grp stand-ins share: a struct type like CPython's struct sequences,
and the entries of an /etc table of the image (glibc's files backend, as in a container)."""


def struct(module, name, fields):
    """A tuple type whose items are also attributes named `fields`, as pwd.struct_passwd is."""

    class Struct(tuple):
        n_fields = n_sequence_fields = len(fields)
        n_unnamed_fields = 0

        def __new__(cls, sequence, dict=None):
            sequence = tuple(sequence)
            if len(sequence) != len(fields):
                raise TypeError(f"{module}.{name}() takes a {len(fields)}-sequence ({len(sequence)}-sequence given)")
            return super().__new__(cls, sequence)

        def __repr__(self):
            return f"{module}.{name}(" + ", ".join(f"{n}={v!r}" for n, v in zip(fields, self)) + ")"

        def __reduce__(self):
            return (type(self), (tuple(self),))

    for i, field in enumerate(fields):
        setattr(Struct, field, property(lambda self, i=i: self[i]))
    Struct.__name__ = Struct.__qualname__ = name
    Struct.__module__ = module
    Struct.__doc__ = f"{module}.{name}: the fields of an entry, by index or by name."
    return Struct


def table(path, width):
    """The entries of /etc/passwd or /etc/group split on ':', those of `width` fields whose
    third (the id) is a number ([] when the image has no such file)."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    return [f for f in (line.split(":") for line in lines) if len(f) == width and f[0] and f[2].isdigit()]


def find(entries, what, key, value):
    """The entry whose `key` is `value`, else KeyError worded as CPython's pwd and grp word it."""
    for entry in entries:
        if getattr(entry, key) == value:
            return entry
    raise KeyError(f"{what}: {value!r}" if isinstance(value, str) else f"{what}: {value}")
