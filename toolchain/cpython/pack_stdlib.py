"""Compile an installed stdlib to .pyc and zip it, byte for byte the same on every run.

Run by the native build python of the same version as the target (same magic number):
    python pack_stdlib.py LIBDIR GUEST_LIBDIR OUT.zip SOURCE_DATE_EPOCH [--stored] [--map OLD=NEW]...

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


def main():
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
