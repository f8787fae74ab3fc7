"""Redirections of the RUN shell: `> f`, `>> f`, `2>&1`, `< f`, `<<EOF`, `<<<`, `&> f`.

Files are guest paths resolved with rootfs.resolve and held open (streams.File), so a
rename or symlink made later cannot send the output anywhere else.
"""
from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any

from boxer_py.errors import BoxerError
from boxer_py.image.rootfs import resolve
from boxer_py.shell import limits
from boxer_py.shell.expand import Expander
from boxer_py.shell.parse import Heredoc, Program, ShellError
from boxer_py.shell.streams import File, Input, Null, Sink
from boxer_py.shell.utilities.core import encode


class RedirectError(Exception):
    """A redirection that cannot be made: the command does not run, status 2."""


def redirect(r: Any, fds: dict[int, Sink], *, program: Program, expander: Expander, root: Path, cwd: str,
             opened: list[File]) -> Input | None:
    """Apply the bashlex redirect node `r`: changes `fds` in place, returns the new stdin if
    it changes; files opened are added to `opened` for the caller to close."""
    kind = r.type
    fd = r.input if isinstance(r.input, int) else None
    if kind in (">&", "<&") and not hasattr(r.output, "kind"):
        target = r.output
        fd = fd if fd is not None else (1 if kind == ">&" else 0)
        if fd == 0:
            return None
        if target == "-":
            fds[fd] = Null()
        elif target in fds:
            fds[fd] = fds[target]
        else:
            raise RedirectError(f"{target}: Bad file descriptor")
        return None
    heredoc: Heredoc | None = program.heredocs.get(r.output.pos[0]) if kind == "<" else None
    if heredoc is not None:
        body = expander.heredoc(heredoc.body) if heredoc.expand else heredoc.body
        return Input(encode(body))
    path = expander.string(program.text[r.output.pos[0]:r.output.pos[1]])
    if kind == "<<<":
        return Input(encode(path + "\n"))
    if kind == "<":
        if fd not in (None, 0):
            return None
        return Input(_read_input(root, cwd, path))
    if kind in (">", ">|", ">>", "&>", "&>>", ">&"):
        sink = _open_output(root, cwd, path, kind.endswith(">>"), fds, opened)
        if kind in ("&>", "&>>", ">&") and fd is None:
            fds[1] = fds[2] = sink
        else:
            fds[fd if fd is not None else 1] = sink
        return None
    raise ShellError(f"the redirection {kind} is not supported")


def _read_input(root: Path, cwd: str, path: str) -> bytes:
    if path == "/dev/null":
        return b""
    data = limits.read_guest(root, posixpath.join(cwd, path))
    if data is None:
        raise RedirectError(f"cannot open {path}: No such file")
    return data


def _open_output(root: Path, cwd: str, path: str, append: bool, fds: dict[int, Sink], opened: list[File]) -> Sink:
    special: dict[str, Sink] = {"/dev/null": Null(), "/dev/stdout": fds[1], "/dev/stderr": fds[2]}
    if path in special:
        return special[path]
    try:
        host = resolve(root, posixpath.join(cwd, path))
    except BoxerError:
        raise RedirectError(f"cannot create {path}: Too many levels of symbolic links") from None
    if host.is_dir():
        raise RedirectError(f"cannot create {path}: Is a directory")
    if not host.parent.is_dir():
        raise RedirectError(f"cannot create {path}: Directory nonexistent")
    try:
        sink = File(host, append)
    except OSError as e:
        raise RedirectError(f"cannot create {path}: {e.strerror}") from None
    opened.append(sink)
    return sink
