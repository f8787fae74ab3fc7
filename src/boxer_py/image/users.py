"""Users and groups of a rootfs: /etc/passwd and /etc/group read and appended in place.

RUN's useradd/groupadd and chown go through here, so names resolve against the image being
built, never the host's account database.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from boxer_py.image.rootfs import resolve


@dataclass(frozen=True)
class User:
    name: str
    uid: int
    gid: int
    home: str
    shell: str


def _rows(root: Path, table: str) -> list[list[str]]:
    path = resolve(root, table)
    if not path.is_file():
        return []
    return [line.split(":") for line in path.read_text(errors="replace").splitlines() if line.count(":") >= 2]


def users(root: Path) -> list[User]:
    found = []
    for f in _rows(root, "/etc/passwd"):
        if len(f) >= 7 and f[2].isdigit() and f[3].isdigit():
            found.append(User(f[0], int(f[2]), int(f[3]), f[5], f[6]))
    return found


def user(root: Path, name: str) -> User | None:
    for u in users(root):
        if u.name == name:
            return u
    if name == "root":
        return User("root", 0, 0, "/root", "/bin/sh")
    return None


def groups(root: Path) -> dict[str, tuple[int, list[str]]]:
    """Group name -> (gid, member names)."""
    found: dict[str, tuple[int, list[str]]] = {}
    for f in _rows(root, "/etc/group"):
        if f[2].isdigit():
            members = [m for m in (f[3].split(",") if len(f) > 3 else []) if m]
            found.setdefault(f[0], (int(f[2]), members))
    return found


def group_id(root: Path, name: str) -> int | None:
    if name.isdigit():
        return int(name)
    if name == "root":
        return 0
    entry = groups(root).get(name)
    return entry[0] if entry else None


def user_id(root: Path, name: str) -> int | None:
    if name.isdigit():
        return int(name)
    found = user(root, name)
    return found.uid if found else None


def next_id(taken: set[int], system: bool) -> int:
    """Like Debian's useradd: system ids count down from 999, others up from 1000."""
    if system:
        n = 999
        while n in taken:
            n -= 1
        return n
    n = 1000
    while n in taken:
        n += 1
    return n


def _append(root: Path, table: str, line: str) -> None:
    path = resolve(root, table)
    if not path.parent.is_dir():
        path.parent.mkdir(parents=True)
        os.chmod(path.parent, 0o755)
    created = not path.exists()
    old = path.read_text(errors="replace") if path.is_file() else ""
    if old and not old.endswith("\n"):
        old += "\n"
    path.write_text(old + line + "\n")
    if created:
        os.chmod(path, 0o644)


def add_group(root: Path, name: str, gid: int) -> None:
    _append(root, "/etc/group", f"{name}:x:{gid}:")


def add_user(root: Path, u: User, gecos: str = "") -> None:
    _append(root, "/etc/passwd", f"{u.name}:x:{u.uid}:{u.gid}:{gecos}:{u.home}:{u.shell}")


def add_member(root: Path, group: str, member: str) -> bool:
    """Add `member` to `group`'s member list; False if there is no such group."""
    path = resolve(root, "/etc/group")
    if not path.is_file():
        return False
    lines = path.read_text(errors="replace").splitlines()
    for n, line in enumerate(lines):
        f = line.split(":")
        if len(f) >= 3 and f[0] == group:
            while len(f) < 4:
                f.append("")
            members = [m for m in f[3].split(",") if m]
            if member not in members:
                members.append(member)
            f[3] = ",".join(members)
            lines[n] = ":".join(f)
            path.write_text("\n".join(lines) + "\n")
            return True
    return False


def set_fields(root: Path, name: str, fields: dict[int, str]) -> None:
    """Replace /etc/passwd fields (by index: 3 gid, 5 home, 6 shell) of user `name`."""
    path = resolve(root, "/etc/passwd")
    lines = path.read_text(errors="replace").splitlines()
    for n, line in enumerate(lines):
        f = line.split(":")
        if len(f) >= 7 and f[0] == name:
            for index, value in fields.items():
                f[index] = value
            lines[n] = ":".join(f)
    path.write_text("\n".join(lines) + "\n")
