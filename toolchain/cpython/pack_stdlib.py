"""Compile an installed stdlib to .pyc and zip it, byte for byte the same on every run.

Run by the native build python of the same version as the target (same magic number):
    PYTHONHASHSEED=0 python -S pack_stdlib.py LIBDIR GUEST_LIBDIR OUT.zip SOURCE_DATE_EPOCH [--stored] [--map OLD=NEW]...

The zip holds sourceless .pyc files (`os.pyc` beside where `os.py` would be, which zipimport
loads directly) in unchecked-hash mode, so no timestamp or build path enters them, plus the
stdlib's data files. Entries are sorted and carry SOURCE_DATE_EPOCH as their time.
Each --map rewrites a host build path in _sysconfigdata (where configure recorded the build
directories, meaningless in the guest), so the zip does not depend on where it was built.
"""
import ast
import importlib.util
import os
import pprint
import sys
import time
import zipfile
from importlib._bootstrap_external import _code_to_hash_pyc

# Directories left out wherever they are (test packages), and at the top level only.
SKIP_ANYWHERE = {"__pycache__", "test", "tests", "idle_test"}
SKIP_TOP = {"idlelib", "tkinter", "turtledemo", "ensurepip", "lib-dynload", "site-packages",
            "__phello__", "venv"}
SKIP_TOP_FILES = {"turtle.py"}


def sysconfigdata(source: bytes, maps) -> bytes:
    """_sysconfigdata with each build path mapped, written anew from its values: pprint wrapped
    the long strings where the host paths' lengths put the breaks, so mapping the text alone
    left line numbers (in the .pyc) that depend on where the build ran."""
    tree = ast.parse(source)
    names = [n.targets[0].id for n in tree.body if isinstance(n, ast.Assign)]
    if names != ["build_time_vars"]:
        raise SystemExit(f"_sysconfigdata: expected only build_time_vars, found {names}")
    values = ast.literal_eval(tree.body[-1].value)

    def mapped(v):
        if isinstance(v, str):
            for old, new in maps:
                v = v.replace(old, new)
        return v
    values = {k: mapped(v) for k, v in values.items()}
    return ("# system configuration generated and used by the sysconfig module\n"
            f"build_time_vars = {pprint.pformat(values)}\n").encode()


# marshal (format 4) type codes by what follows the code byte: nothing, fixed bytes, a 1-byte
# or 4-byte length of bytes, or objects (a count, or the code object's fixed layout).
_BARE = set(b"0NFTS.")
_FIXED = {ord("i"): 4, ord("g"): 8, ord("y"): 16, ord("I"): 8}
_SIZED1, _SIZED4 = set(b"zZ"), set(b"stuaA")
_FLAG_REF = 0x80


def _scan(data: bytes, pos: int, objs: list, refs: list) -> int:
    """Walk one marshalled object at `pos`; record each object's (type byte offset, flagged)
    in `objs` in the reader's numbering order, and each back-reference's offset in `refs`."""
    code = data[pos]
    flag, kind = code & _FLAG_REF, code & ~_FLAG_REF
    objs.append((pos, bool(flag)))
    pos += 1
    u32 = lambda at: int.from_bytes(data[at:at + 4], "little", signed=True)  # noqa: E731
    if kind in _BARE:
        return pos
    if kind in _FIXED:
        return pos + _FIXED[kind]
    if kind == ord("r"):
        objs.pop()
        refs.append(pos)
        return pos + 4
    if kind in _SIZED1:
        return pos + 1 + data[pos]
    if kind in _SIZED4:
        return pos + 4 + u32(pos)
    if kind == ord("l"):
        return pos + 4 + 2 * abs(u32(pos))
    if kind in (ord("f"), ord("x")):
        for _ in range(1 if kind == ord("f") else 2):
            pos += 1 + data[pos]
        return pos
    if kind in b"([<>":
        n, pos = u32(pos), pos + 4
    elif kind == ord(")"):
        n, pos = data[pos], pos + 1
    elif kind == ord("{"):
        while data[pos] != ord("0"):
            pos = _scan(data, _scan(data, pos, objs, refs), objs, refs)
        return pos + 1
    elif kind == ord("c"):  # 3.8-3.10: six int32 fields, 8 objects, firstlineno, lnotab
        pos += 24
        for _ in range(8):
            pos = _scan(data, pos, objs, refs)
        return _scan(data, pos + 4, objs, refs)
    else:
        raise ValueError(f"marshal type {chr(kind)!r} at {pos - 1}")
    for _ in range(n):
        pos = _scan(data, pos, objs, refs)
    return pos


def stable_marshal(data: bytes) -> bytes:
    """`data` (one marshalled object) with FLAG_REF only on objects a back-reference uses.
    Before 3.11, marshal flags every object whose reference count is above 1, and an interned
    name's count depends on what else the process holds (its own imports, environment,
    arguments): the same code marshalled in two processes differed. An object the stream
    refers back to is held twice by the code itself, so it is flagged in every process; the
    others' flags are cleared and the references renumbered, as the reader counts them."""
    objs: list = []
    refs: list = []
    if _scan(data, 0, objs, refs) != len(data):
        raise ValueError("trailing bytes after the marshalled object")
    flagged = [at for at, flag in objs if flag]
    used = sorted({int.from_bytes(data[r:r + 4], "little") for r in refs})
    keep = {flagged[i] for i in used}
    renumber = {old: new for new, old in enumerate(used)}
    out = bytearray(data)
    for at in flagged:
        if at not in keep:
            out[at] &= ~_FLAG_REF
    for r in refs:
        out[r:r + 4] = renumber[int.from_bytes(data[r:r + 4], "little")].to_bytes(4, "little")
    return bytes(out)


def main():
    if sys.version_info < (3, 11) and sys.flags.hash_randomization:
        raise SystemExit("pack_stdlib.py: run with PYTHONHASHSEED=0 and without -E: before 3.11, marshal "
                         "writes a set or frozenset constant in its hash order")
    libdir, guest, out, epoch = sys.argv[1:5]
    method = zipfile.ZIP_STORED if "--stored" in sys.argv else zipfile.ZIP_DEFLATED
    maps = [sys.argv[i + 1].split("=", 1) for i, a in enumerate(sys.argv) if a == "--map"]
    date_time = time.gmtime(max(int(epoch), 315532800))[:6]  # zip cannot go before 1980
    entries = []
    for root, dirs, files in os.walk(libdir):
        rel_root = os.path.relpath(root, libdir)
        top = rel_root == "."
        dirs[:] = sorted(d for d in dirs if d not in SKIP_ANYWHERE
                         and not (top and (d in SKIP_TOP or d.startswith("config-"))))
        for f in sorted(files):
            if top and f in SKIP_TOP_FILES:
                continue
            entries.append(os.path.normpath(os.path.join(rel_root, f)))
    skipped = []
    n_pyc = 0
    with zipfile.ZipFile(out, "w") as z:
        for rel in sorted(entries):
            path = os.path.join(libdir, rel)
            if rel.endswith((".pyc", ".pyo")):
                continue
            with open(path, "rb") as fh:
                data = fh.read()
            if os.path.basename(rel).startswith("_sysconfigdata"):
                data = sysconfigdata(data, maps)
            if rel.endswith(".py"):
                try:
                    code = compile(data, f"{guest}/{rel}", "exec", dont_inherit=True, optimize=0)
                except SyntaxError as e:
                    skipped.append(f"{rel}: {e}")
                    continue
                data = bytes(_code_to_hash_pyc(code, importlib.util.source_hash(data), checked=False))
                if sys.version_info < (3, 11):  # 3.11+ gave the same bytes in every check so far
                    data = data[:16] + stable_marshal(data[16:])
                rel = rel[:-3] + ".pyc"
                n_pyc += 1
            info = zipfile.ZipInfo(rel.replace(os.sep, "/"), date_time=date_time)
            info.compress_type = method
            info.external_attr = 0o100644 << 16
            info.create_system = 3
            z.writestr(info, data, compresslevel=9 if method == zipfile.ZIP_DEFLATED else None)
    print(f"{out}: {n_pyc} modules, {len(entries) - n_pyc} other files; skipped: {skipped or 'none'}")


if __name__ == "__main__":
    main()
