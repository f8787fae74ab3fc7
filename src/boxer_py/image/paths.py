"""Paths inside an image, as its programs see them: chroot-style symlink resolution and the
PATH lookup of a command. Pure functions over a way to read links, so the same rules serve a
rootfs on disk (image.rootfs), the layer tars of an OCI image (registry.oci) and the RUN
shell and the launcher (which look programs up on disk)."""
from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Mapping

MAX_LINKS = 40  # as Linux's ELOOP limit


class TooManyLinks(Exception):
    """More than MAX_LINKS symlinks on the way (a loop); callers turn it into their own error."""


def guest_parts(guest: str) -> list[str]:
    return [p for p in guest.split("/") if p not in ("", ".")]


def resolve(guest: str, readlink: Callable[[str], str | None], follow_last: bool = True) -> list[str]:
    """The components of `guest` with every symlink followed as a chroot would: `..` never
    climbs above the root and absolute link targets restart from it. `readlink(rel)` gives
    the target of the link at `rel` ("a/b", relative to the root), or None if it is no link.
    Raises TooManyLinks on a loop."""
    todo, done, links = guest_parts(guest), list[str](), 0
    while todo:
        part = todo.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        target = readlink("/".join([*done, part])) if (todo or follow_last) else None
        if target is not None:
            links += 1
            if links > MAX_LINKS:
                raise TooManyLinks(guest)
            if target.startswith("/"):
                done = []
            todo = guest_parts(target) + todo
            continue
        done.append(part)
    return done


def program_candidates(name: str, path_env: str, workdir: str) -> list[str]:
    """Where a shell looks for command `name`, in order, as absolute guest paths: `name`
    itself (from `workdir`) when it has a slash, else each PATH entry (empty means `.`)."""
    if "/" in name:
        return [posixpath.normpath(posixpath.join(workdir, name))]
    return [posixpath.normpath(posixpath.join(workdir, d or ".", name)) for d in path_env.split(":")]


MAX_SHEBANG = 256  # Linux reads this much of a script's first line (BINPRM_BUF_SIZE)


def interpreter_of(head: bytes) -> list[str] | None:
    """The command a script's `#!` line asks for, as the kernel's exec reads it: the
    interpreter and at most one argument (the rest of the line); `#!/usr/bin/env NAME` gives
    just NAME, to be looked up on PATH. None if `head` (the file's first bytes) has no `#!`."""
    if not head.startswith(b"#!"):
        return None
    line = head[2:MAX_SHEBANG].split(b"\n", 1)[0].strip().decode("utf-8", errors="replace")
    interpreter, _, arg = line.partition(" ")
    arg = arg.strip()
    if not interpreter:
        return None
    if posixpath.basename(interpreter) == "env" and arg and not arg.startswith("-"):
        return arg.split()[:1]
    return [interpreter, arg] if arg else [interpreter]


def cpython_start(name: str, found: str, env: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """argv[0] and the variables to add when program `name`, found at guest path `found`, is
    CPython, so that it starts as native CPython does.

    Native CPython finds its own executable by searching PATH for argv[0]; CPython for WASI
    cannot, so `sys.executable` came out empty, errors read ": No module named x", and a venv's
    `python` (a link beside its pyvenv.cfg) used the base's site-packages: it gets the path it
    was found at as argv[0]. CPython for WASI also has no user site unless PYTHONUSERBASE is
    set, so `pip install --user` packages (in ~/.local, as in Docker) get it from HOME.
    """
    if not re.fullmatch(r"python[0-9.]*", posixpath.basename(name)):
        return name, {}
    home = env.get("HOME", "")
    extra = {"PYTHONUSERBASE": posixpath.join(home, ".local")} if "PYTHONUSERBASE" not in env and \
        home.startswith("/") else {}
    return (name if "/" in name else found), extra
