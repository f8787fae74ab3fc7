"""Console scripts (uvicorn, flask, gunicorn...): pip writes them for the build host's
interpreter; the image gets them where pip would put them for its own Python, with a `#!`
line naming that Python, and `boxer run` starts them as exec does (runtime/argv.py)."""
from __future__ import annotations

import posixpath
import re
from pathlib import Path

from boxer_py.image import hostfs
from boxer_py.image.rootfs import resolve

MAX_SCRIPT = 1 << 20  # a console script is a few lines; a wheel's scripts/ may hold more


def bin_dir(site: str) -> str:
    """Where pip puts scripts for packages in `site`: PREFIX/bin for PREFIX/lib/pythonX.Y/
    site-packages (the base's, a venv's, --user's, --prefix's), else (--target) `site`/bin."""
    m = re.fullmatch(r"(.*)/lib/python[0-9.]+/site-packages/?", site)
    return posixpath.join(m[1] or "/", "bin") if m else posixpath.join(site, "bin")


def install(scripts: Path, root: Path, site: str) -> list[str]:
    """Copy pip's bin/ (host paths in their `#!` lines) into the image for `site`; the
    names installed. A python `#!` becomes PREFIX/bin/python if the image has it (a venv's:
    its site-packages then come with it), else `/usr/bin/env python3`, as found on PATH."""
    where = bin_dir(site)
    python = posixpath.join(where, "python")
    shebang = f"#!{python}\n" if resolve(root, python).exists() else "#!/usr/bin/env python3\n"
    dest = resolve(root, where)
    dest.mkdir(parents=True, exist_ok=True)
    done = []
    for entry in sorted(scripts.iterdir()):
        try:
            data = hostfs.read_file(entry, MAX_SCRIPT)
        except hostfs.Unreadable:
            continue  # pip's own output: only regular files are expected
        first, _, rest = data.partition(b"\n")
        if first.startswith(b"#!") and b"python" in first:
            data = shebang.encode() + rest
        target = resolve(root, posixpath.join(where, entry.name), follow_last=False)
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.exists():
            continue  # a directory of that name: leave the image's
        target.write_bytes(data)
        target.chmod(0o755)
        done.append(entry.name)
    return done
