"""File modes and owners for the RUN shell: mode parsing (chmod's symbolic modes), chmod, chown, chgrp.

Owners are not set on the builder's files: chown records them in Call.owners (guest path ->
(uid, gid)), which the image keeps.
"""
from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from boxer_py.image import users as accounts
from boxer_py.image.rootfs import within
from boxer_py.shell.parse import ShellError
from boxer_py.shell.utilities.core import Call, Failure, Utility, each_operand, lexists, parse_options, real_dir


def parse_mode(call: Call, spec: str, current: int, is_dir: bool) -> int:
    if re.fullmatch(r"[0-7]{1,4}", spec):
        return int(spec, 8)
    mode = current
    for clause in spec.split(","):
        m = re.fullmatch(r"([ugoa]*)((?:[-+=](?:[rwxXst]*|[ugo]))+)", clause)
        if not m:
            raise ShellError(f"{call.name}: invalid mode '{spec}'")
        who = m.group(1) or ""
        mask = 0
        for w in who or "a":
            mask |= {"u": 0o4700, "g": 0o2070, "o": 0o1007, "a": 0o7777}[w]
        umask = 0o022 if not who else 0
        for op, perms in re.findall(r"([-+=])([rwxXst]*|[ugo])", m.group(2)):
            bits = 0
            if perms and perms in "ugo" and len(perms) == 1:
                shift = {"u": 6, "g": 3, "o": 0}[perms]
                part = (mode >> shift) & 7
                bits = part << 6 | part << 3 | part
            else:
                for p in perms:
                    if p == "r":
                        bits |= 0o444
                    elif p == "w":
                        bits |= 0o222
                    elif p == "x" or (p == "X" and (is_dir or mode & 0o111)):
                        bits |= 0o111
                    elif p == "s":
                        bits |= 0o6000
                    elif p == "t":
                        bits |= 0o1000
            bits &= mask & ~umask
            if op == "+":
                mode |= bits
            elif op == "-":
                mode &= ~bits
            else:
                mode = (mode & ~(mask & 0o7777 & ~(0o7000 if is_dir else 0))) | bits
    return mode & 0o7777


def _walk(host: Path) -> list[Path]:
    """`host` and, for a real directory, everything under it; symlinks are listed, not entered."""
    found = [host]
    if real_dir(host):
        for dirpath, dirnames, filenames in os.walk(host):
            found.extend(Path(dirpath) / n for n in sorted(dirnames + filenames))
    return found


def chmod(call: Call) -> int:
    options: list[str] = []
    rest: list[str] = []
    for a in call.args:
        if not rest and re.fullmatch(r"-[Rfcv]+|--recursive|--silent|--quiet|--changes|--verbose", a):
            options.append(a)
        else:
            rest.append(a)
    opts, _ = parse_options(call, "Rfcv", long={"recursive": "R", "silent": "f", "quiet": "f", "changes": "c",
                                           "verbose": "v"}, args=options)
    if len(rest) < 2:
        return call.fail("missing operand")
    spec, operands = rest[0], rest[1:]
    parse_mode(call, spec, 0, False)   # reject a bad mode before touching anything

    def change(path: str) -> None:
        host = call.host(path)
        if not host.exists():
            raise Failure(f"cannot access '{path}': No such file or directory")
        for h in _walk(host) if opts.get("R") else [host]:
            if h.is_symlink():
                continue
            current = stat.S_IMODE(h.stat().st_mode)
            os.chmod(h, parse_mode(call, spec, current, h.is_dir()))

    return each_operand(call, operands, change)


def chown(call: Call) -> int:
    opts, operands = parse_options(call, "RhfvHLP", long={"recursive": "R", "no-dereference": "h",
                                                     "silent": "f", "quiet": "f", "verbose": "v"})
    if len(operands) < 2:
        return call.fail("missing operand")
    spec, operands = operands[0], operands[1:]
    user, colon, group = spec.partition(":")
    uid = gid = None
    if user:
        uid = accounts.user_id(call.root, user)
        if uid is None:
            return call.fail(f"invalid user: '{spec}'")
        if colon and not group:
            found = accounts.user(call.root, user)
            gid = found.gid if found else uid
    if group:
        gid = accounts.group_id(call.root, group)
        if gid is None:
            return call.fail(f"invalid group: '{spec}'")

    def change(path: str) -> None:
        host = call.host(path, follow_last=bool(opts.get("h")) is False)
        if not lexists(host):
            raise Failure(f"cannot access '{path}': No such file or directory")
        for h in _walk(host) if opts.get("R") else [host]:
            key = within(call.root, h)
            old_uid, old_gid = call.owners.get(key, (0, 0))
            call.owners[key] = (old_uid if uid is None else uid, old_gid if gid is None else gid)

    return each_operand(call, operands, change)


def chgrp(call: Call) -> int:
    if len(call.args) >= 2:
        flags = [a for a in call.args if a.startswith("-")]
        operands = [a for a in call.args if not a.startswith("-")]
        if operands:
            call.args = flags + [":" + operands[0]] + operands[1:]
    return chown(call)


UTILITIES: dict[str, Utility] = {"chmod": chmod, "chown": chown, "chgrp": chgrp}
