"""RUN --mount: what a RUN sees only while it runs (BuildKit's bind, secret and tmpfs mounts).

Everything is put in place in the stage's rootfs before the RUN and taken away after it,
before the layer's snapshot, so no mounted file (and no secret) ever reaches a layer. A
secret is read once from the host, bounded (MAX_SECRET) and regular; its content is never
part of a cache key. Bind sources of the context go through Context (inside it, .dockerignore
applied, special files refused), those of a stage or an image through walk_plain.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import posixpath
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from boxer_py.builder.context import Context
from boxer_py.builder.files import file_digest, image_root, place, walk_plain
from boxer_py.dockerfile.plan import BuildPlan, Mount, RunStep
from boxer_py.errors import BuildError, DockerfileError
from boxer_py.image.hostfs import remove_tree
from boxer_py.image.imagefile import sha256
from boxer_py.image.rootfs import resolve, within

MAX_SECRET = 500 << 10  # bytes of one secret, as BuildKit's limit


def bound_digest(step: RunStep, context: Context, built: dict[int, Any], plan: BuildPlan) -> str:
    """What the bind mounts show, for the cache key: the content of context files, the state
    of a stage (its key) or an image (its id). A secret's content is never part of it."""
    parts = []
    for m in step.mounts:
        if m.kind != "bind":
            continue
        if m.from_image is not None:
            parts.append(f"{m.target} {m.from_image.id} {m.source}")
        elif m.from_stage is not None:
            parts.append(f"{m.target} {built[m.from_stage].key} {m.source}")
        else:
            for host in _context_source(m, context, step.line):
                entries = [(host, "")] + (context.walk(host, step.line, "RUN --mount") if host.is_dir() else [])
                for path, rel in entries:
                    kind = "l" + os.readlink(path) if path.is_symlink() else "d" if path.is_dir() \
                        else file_digest(path)
                    parts.append(f"{m.target} {rel} {path.lstat().st_mode & 0o7777:o} {kind}")
    return sha256("\n".join(parts).encode())


def _context_source(m: Mount, context: Context, line: int) -> list[Path]:
    source = m.source.lstrip("/") or "."
    return [context.root] if posixpath.normpath(source) == "." else context.sources(source, line, "RUN --mount")


class Mounts:
    """Puts a RUN's mounts in place and, whatever happens, takes them away again: a target's
    earlier content is moved aside and put back, directories made for a target are removed.
    Entering returns the variables that secrets with env= add."""

    _aside = itertools.count()

    def __init__(self, step: RunStep, fs: Any, context: Context, built: dict[int, Any], plan: BuildPlan,
                 secrets: dict[str, bytes]):
        self.step, self.fs, self.context, self.built, self.plan, self.secrets = step, fs, context, built, plan, secrets
        self.undo: list[tuple[Path, Callable[[], object]]] = []  # (the host path it touches, how)

    def fail(self, why: str):
        raise DockerfileError(f"RUN --mount: {why}", self.plan.dockerfile, self.step.line)

    def __enter__(self) -> dict[str, str]:
        env: dict[str, str] = {}
        try:
            for m in self.step.mounts:
                if m.kind == "secret":
                    data = self.secrets.get(m.id)
                    if data is None:
                        if m.required:
                            self.fail(f"type=secret,id={m.id}: no such secret; pass it with "
                                      f"boxer build --secret id={m.id},src=FILE")
                        continue
                    if m.env:
                        env[m.env] = data.decode("utf-8", errors="replace")
                    if m.target:
                        host = self._clear(m.target)
                        host.write_bytes(data)
                        os.chmod(host, 0o400)
                elif m.kind == "tmpfs":
                    self._clear(m.target).mkdir()
                else:
                    self._bind(m)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return env

    def __exit__(self, *exc: object) -> None:
        """Undo in reverse order. The RUN may have replaced a directory on a mount's path with
        a symlink (to `/`, which the host would read as its own root): every host path is first
        checked to have only real directories between the rootfs and it, and a path that does
        not is an error, not followed (nor left behind: the build fails, so no layer is made)."""
        unsafe = ""
        while self.undo:
            host, undo = self.undo.pop()
            if not _plain_below(self.fs.root, host):
                unsafe = unsafe or within(self.fs.root, host)
                continue
            with contextlib.suppress(OSError):
                undo()
        if unsafe and exc[0] is None:
            self.fail(f"the RUN replaced a directory on the way to {unsafe} with a link; a mount's "
                      "directories must stay directories")

    def _clear(self, guest: str) -> Path:
        """Make `guest` free for a mount: its parents made (and removed afterwards), what was
        there moved aside (and put back afterwards). Returns its host path."""
        root = self.fs.root
        host = resolve(root, guest)
        missing = []
        parent = host.parent
        while not os.path.lexists(parent) and parent != root:
            missing.append(parent)
            parent = parent.parent
        if parent.is_symlink() or not parent.is_dir():
            self.fail(f"{guest}: {within(root, parent)} is not a directory")
        for d in reversed(missing):
            d.mkdir()
            self.undo.append((d, d.rmdir))
        if os.path.lexists(host):
            aside = root.parent / f"{root.name}-aside-{next(self._aside)}"
            os.rename(host, aside)
            self.undo.append((host, lambda: os.rename(aside, host)))
        self.undo.append((host, lambda: remove_tree(host)))
        return host

    def _bind(self, m: Mount) -> None:
        """type=bind: a file or directory of the context, a stage or an image, at `target`."""
        line = self.step.line
        if m.from_stage is None and m.from_image is None:
            sources = _context_source(m, self.context, line)
            if len(sources) != 1:
                self.fail(f"source={m.source}: names {len(sources)} paths; a bind mount takes one")
            src = sources[0]
            walk = lambda top: self.context.walk(top, line, "RUN --mount")  # noqa: E731
        else:
            src_root = image_root(m.from_image, self.fs.root.parent) if m.from_image is not None \
                else self.built[m.from_stage or 0].root
            src = resolve(src_root, m.source)
            if not os.path.lexists(src):
                self.fail(f"source={m.source}: no such file or directory in "
                          + (f"stage {m.from_stage}" if m.from_image is None else m.from_image.ref))
            walk = walk_plain
        host = self._clear(m.target)
        fail = lambda why: self.fail(why)  # noqa: E731
        if src.is_dir():
            host.mkdir()
            for path, rel in walk(src):
                place(path, self.fs.root, m.target + "/" + rel, fail, None)
        else:
            place(src, self.fs.root, m.target, fail, None)


def _plain_below(root: Path, host: Path) -> bool:
    """Whether every directory between `root` and `host` (not `host` itself) is a real directory."""
    here = root
    for part in host.relative_to(root).parts[:-1]:
        here = here / part
        if here.is_symlink() or not here.is_dir():
            return False
    return True


def read_secret(path: Path, ident: str) -> bytes:
    """A secret's file on the host, read once, bounded and regular (a FIFO is not waited on)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        raise BuildError(f"--secret id={ident}: cannot read {path}: {e.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise BuildError(f"--secret id={ident}: {path} is not a regular file")
        data = f.read(MAX_SECRET + 1)
    if len(data) > MAX_SECRET:
        raise BuildError(f"--secret id={ident}: {path} is larger than {MAX_SECRET} bytes")
    return data
