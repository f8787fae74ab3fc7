"""`ls` for the RUN shell: names, and with -l the mode, the owner chown recorded and the size."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from boxer_py.image.rootfs import within
from boxer_py.shell.utilities.core import Call, Failure, Utility, lexists, parse_options, real_dir


def ls(call: Call) -> int:
    opts, operands = parse_options(call, "aA1ldF", long={"all": "a", "almost-all": "A"})
    status = 0
    files, dirs = [], []
    for name in operands or ["."]:
        try:
            link = call.host(name, follow_last=False)
            host = link if opts.get("l") or opts.get("d") else call.host(name)
        except Failure as e:
            status = call.fail(str(e), 2)
            continue
        if not lexists(link):
            status = call.fail(f"cannot access '{name}': No such file or directory", 2)
        elif real_dir(host) and not opts.get("d"):
            dirs.append((name, host))
        else:
            files.append((name, link))
    lines = [_ls_line(call, n, h, opts) for n, h in files]
    for k, (name, host) in enumerate(dirs):
        if len(operands) > 1:
            lines.append(("\n" if lines or k else "") + f"{name}:")
        names = sorted(os.listdir(host))
        if opts.get("a"):
            names = [".", ".."] + names
        elif not opts.get("A"):
            names = [n for n in names if not n.startswith(".")]
        lines.extend(_ls_line(call, n, host / n if n not in (".", "..") else host, opts) for n in names)
    if lines:
        call.print("\n".join(lines) + "\n")
    return status


def _ls_line(call: Call, name: str, host: Path, opts: dict) -> str:
    if not opts.get("l"):
        return name
    st = host.lstat()
    uid, gid = call.owners.get(within(call.root, host), (0, 0))
    text = f"{stat.filemode(st.st_mode)} 1 {uid} {gid} {st.st_size:>8} {name}"
    return text + (f" -> {os.readlink(host)}" if host.is_symlink() else "")


UTILITIES: dict[str, Utility] = {"ls": ls}
