"""Commands the RUN shell runs as shell scripts itself rather than handing them to `external`:
`sh`, `bash`, `dash`, `ash` by name, and files whose `#!` line names one of them."""
from __future__ import annotations

import posixpath
from pathlib import Path

from boxer_py.errors import BoxerError
from boxer_py.image.rootfs import resolve
from boxer_py.shell.utilities.core import decode, lookup_path

SHELLS = {"sh", "bash", "dash", "ash"}


def is_shell(name: str) -> bool:
    """`sh`, `/bin/bash`...: a command this shell runs as a new shell."""
    return posixpath.basename(name) in SHELLS


def shell_script(root: Path, cwd: str, path_var: str, name: str) -> tuple[str, bool, list[str]] | None:
    """(guest path, executable, the `#!` line's options: `-e`, `-`) when the command `name` is
    a script for sh or bash; only its first line (at most 256 bytes) is read, through rootfs.resolve."""
    guest = posixpath.join(cwd, name) if "/" in name else lookup_path(root, cwd, path_var, name)
    if guest is None:
        return None
    try:
        host = resolve(root, guest)
        if not host.is_file():
            return None
        with open(host, "rb") as f:
            first = f.readline(256)
    except (OSError, BoxerError):
        return None
    words = decode(first[2:]).split() if first.startswith(b"#!") else []
    if words[:1] and posixpath.basename(words[0]) == "env":
        words = words[1:]
    if not words or not is_shell(words[0]):
        return None
    return guest, bool(host.stat().st_mode & 0o111), words[1:]
