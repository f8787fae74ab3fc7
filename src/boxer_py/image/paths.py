"""Paths inside an image, as its programs see them: chroot-style symlink resolution and the
PATH lookup of a command. Pure functions over a way to read links, so the same rules serve a
rootfs on disk (image.rootfs), the layer tars of an OCI image (registry.oci) and the RUN
shell and the launcher (which look programs up on disk)."""
from __future__ import annotations

import posixpath
from collections.abc import Callable

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
