"""Executes a build plan: each stage's rootfs on disk, one layer tar per filesystem step.

Like kaniko's commands, every step reports the guest paths it changed; the layer is a
tar of exactly those. Metadata (ENV, CMD...) was already applied by the planner.
"""
from __future__ import annotations

import io
import os
import posixpath
import shutil
import stat
import tarfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from boxer_py.builder.context import Context
from boxer_py.builder.runstep import Commands, execute
from boxer_py.dockerfile.bases import Base
from boxer_py.dockerfile.plan import BuildPlan, CopyStep, ImageBase, MkdirStep, RunStep, Stage
from boxer_py.errors import BoxerError, BuildError, DockerfileError
from boxer_py.image import imagefile, users
from boxer_py.image.config import ImageSpec, is_root
from boxer_py.image.imagefile import sha256, write
from boxer_py.image.rootfs import apply_layer, copy_tree, diff, extract_tar, layer_tar, resolve, snapshot, within

Progress = Callable[[str], None]


@dataclass
class _StageFS:
    root: Path
    layers: list[bytes] = field(default_factory=list)
    owners: dict[str, tuple[int, int]] = field(default_factory=dict)
    key: str = ""  # the cache key of the state so far: a chain over every step and its result


class StepCache:
    """RUN results, keyed like Docker's cache: the key chains the parent state (the digests of
    every layer before) with the step itself (script, env, workdir, user). COPY, ADD and
    WORKDIR always run, they are cheap, and their layer digest carries their content into the
    chain, so changing a file re-runs exactly the RUN steps after the COPY that took it."""

    def __init__(self, directory: Path | None, use: bool = True, salt: str = ""):
        # `salt` names what else changes a RUN's result (e.g. --skip-unsupported): part of every key.
        self.directory, self.use, self.salt = directory, use, salt

    def get(self, key: str) -> bytes | None:
        """The cached layer, if present and intact (a damaged entry is a miss, then rewritten)."""
        if self.directory is None or not self.use:
            return None
        try:
            data = (self.directory / f"{key}.tar").read_bytes()
            digest = (self.directory / f"{key}.sha256").read_text().strip()
        except OSError:
            return None
        return data if sha256(data) == digest else None

    def put(self, key: str, layer: bytes) -> None:
        if self.directory is not None:
            write(self.directory / f"{key}.tar", layer)
            write(self.directory / f"{key}.sha256", sha256(layer).encode())


@dataclass(frozen=True)
class Assembled:
    spec: ImageSpec
    layers: list[bytes]


def assemble(plan: BuildPlan, context: Context, scratch: Path, progress: Progress = lambda _: None,
             commands: Callable[[Path, dict[str, str]], Commands] | None = None, cache: StepCache = StepCache(None)) -> Assembled:
    """Build the stages the target needs, in `scratch` (a private temp directory).
    `commands(root, labels)` serves RUN's non-shell commands (Wasm programs, pip) for a stage."""
    built: dict[int, _StageFS] = {}
    needed = plan.needed()
    total = sum(1 + len(plan.stages[i].steps) for i in needed)
    counter = iter(range(1, total + 1))
    for index in needed:
        stage = plan.stages[index]
        label = f"{stage.name or 'stage-' + str(index)}"
        start = time.monotonic()
        fs = _start(stage, built, scratch / f"stage-{index}", plan)
        fs.key = fs.key or sha256("\n".join(sha256(layer) for layer in fs.layers).encode())
        progress(f"#{next(counter)} [{label}] {stage.history[0]} ({time.monotonic() - start:.1f}s)")
        for step in stage.steps:
            start = time.monotonic()
            status = ""
            if isinstance(step, RunStep):
                key = sha256(f"{fs.key}\n{cache.salt}{replace(step, line=0)!r}".encode())
                layer = cache.get(key)
                if layer is not None:
                    fs.owners.update(apply_layer(fs.root, layer))
                    status = "CACHED "
                else:
                    layer = _run(step, fs, plan, commands, progress)
                    cache.put(key, layer)
            else:
                layer = layer_tar(fs.root, _run_step(step, fs, context, built, plan), fs.owners)
            fs.layers.append(layer)
            fs.key = sha256(f"{fs.key}\n{sha256(layer)}".encode())
            progress(f"#{next(counter)} [{label}] {status}{step.text} ({time.monotonic() - start:.1f}s)")
        built[index] = fs
    final = built[plan.target]
    target = plan.stages[plan.target]
    spec = ImageSpec(target.config, tuple(sha256(layer) for layer in final.layers), _history(plan, plan.target))
    return Assembled(spec, final.layers)


def _history(plan: BuildPlan, index: int) -> tuple[str, ...]:
    stage = plan.stages[index]
    if stage.parent is not None:
        return _history(plan, stage.parent) + stage.history[1:]
    if isinstance(stage.base, ImageBase):
        return stage.base.history + stage.history[1:]
    return stage.history


def _start(stage: Stage, built: dict[int, _StageFS], root: Path, plan: BuildPlan) -> _StageFS:
    if stage.parent is not None:
        parent = built[stage.parent]
        copy_tree(parent.root, root)
        return _StageFS(root, list(parent.layers), dict(parent.owners), parent.key)
    root.mkdir(parents=True)
    fs = _StageFS(root)
    if isinstance(stage.base, ImageBase):
        for layer in _image_layers(stage.base):
            fs.owners.update(apply_layer(root, layer))
            fs.layers.append(layer)
    elif not stage.base.is_scratch:
        fs.layers.append(layer_tar(root, _install_base(stage.base, root), fs.owners))
    return fs


def _image_layers(image: ImageBase) -> list[bytes]:
    """The layers of a local image, read (and digest-checked) from its file."""
    read = imagefile.read(image.path)
    if read.id != image.id:
        raise BuildError(f"{image.ref}: the image changed while building; build again")
    return [read.layer(d) for d in read.layers]


def _install_base(base: Base, root: Path) -> set[str]:
    runtime = base.runtime_file()
    target = resolve(root, base.path)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(runtime, target)
    os.chmod(target, 0o755)
    changed = {base.path}
    for d in base.dirs:
        host = resolve(root, d)
        host.mkdir(parents=True, exist_ok=True)
        os.chmod(host, 0o1777 if d == "/tmp" else 0o755)
        changed.add(d)
    for link, points_to in base.links.items():
        host = resolve(root, link, follow_last=False)
        host.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(points_to, host)
        changed.add(link)
    for extra in base.files:
        source = base.pinned(extra.file, extra.sha256)
        target = resolve(root, extra.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        if extra.unpack:
            _unpack_member(source, extra.unpack, target)
        else:
            shutil.copyfile(source, target)
            os.chmod(target, 0o644)
        changed.add(extra.path)
    return changed


def _unpack_member(archive: Path, member: str, target: Path) -> None:
    """Unpack `member`, a zip inside the zip `archive`, into the directory `target`; each
    name is resolved inside `target`, so none can escape it."""
    with zipfile.ZipFile(archive) as outer, zipfile.ZipFile(io.BytesIO(outer.read(member))) as inner:
        target.mkdir(parents=True, exist_ok=True)
        for info in inner.infolist():
            host = resolve(target, info.filename)
            if info.is_dir():
                host.mkdir(parents=True, exist_ok=True)
                continue
            host.parent.mkdir(parents=True, exist_ok=True)
            host.write_bytes(inner.read(info))
            os.chmod(host, 0o644)


def _run(step: RunStep, fs: _StageFS, plan: BuildPlan, commands, progress: Progress) -> bytes:
    """RUN: execute, then the layer is what changed between snapshots (deletions as whiteouts)."""
    if commands is None:
        raise DockerfileError("RUN needs a runtime to run programs at build time", plan.dockerfile, step.line)
    before = snapshot(fs.root)
    try:
        result = execute(step, fs.root, commands(fs.root, dict(step.labels)))
    except BoxerError as e:
        raise DockerfileError(f"RUN: {e}", plan.dockerfile, step.line) from None
    log = result.log.decode(errors="replace").splitlines()
    for line in log:
        progress(f"    {line}")
    if result.exit_code != 0:
        last = next((x for x in reversed(log) if x.strip()), "")
        raise DockerfileError(f"RUN returned exit code {result.exit_code}" + (f": {last.strip()}" if last else ""),
                              plan.dockerfile, step.line)
    changed, deleted = diff(before, snapshot(fs.root))
    if not is_root(step.user):  # what a RUN under USER makes belongs to that user
        owner = _owner(step.user, fs.root, lambda why: _raise(plan.dockerfile, step.line, f"USER {step.user}: {why}"))
        fs.owners.update({path: owner for path in changed if path not in before})
    fs.owners.update(result.owners)
    for path in list(fs.owners):
        if any(path == d or path.startswith(d + "/") for d in deleted):
            del fs.owners[path]
    return layer_tar(fs.root, changed | set(result.owners), fs.owners, deleted, recursive=False)


def _run_step(step, fs: _StageFS, context: Context, built: dict[int, _StageFS], plan: BuildPlan) -> set[str]:
    if isinstance(step, MkdirStep):
        host = resolve(fs.root, step.path)
        if host.exists() and not host.is_dir():
            raise DockerfileError(f"WORKDIR {step.path} exists and is not a directory", plan.dockerfile, step.line)
        host.mkdir(parents=True, exist_ok=True)
        return {within(fs.root, host)}
    assert isinstance(step, CopyStep)
    return _copy(step, fs, context, built, plan)


def _copy(step: CopyStep, fs: _StageFS, context: Context, built: dict[int, _StageFS], plan: BuildPlan) -> set[str]:
    kind = "ADD" if step.add else "COPY"
    fail = lambda why: _raise(plan.dockerfile, step.line, f"{kind} {why}")  # noqa: E731
    if step.from_stage is not None or step.from_image is not None:
        src_root = built[step.from_stage].root if step.from_image is None else _image_root(step.from_image, fs)
        sources = []
        for s in step.sources:
            host = resolve(src_root, s)
            if not os.path.lexists(host):
                fail(f"--from: {s}: no such file or directory in "
                     + (f"stage {step.from_stage}" if step.from_image is None else step.from_image.ref))
            sources.append(host)
        walk = _walk_plain
    else:
        sources = [p for s in step.sources for p in context.sources(s, step.line, kind)]
        walk = lambda top: context.walk(top, step.line, kind)  # noqa: E731
    into_dir = step.dest.endswith("/") or len(sources) > 1
    if len(sources) > 1 and not step.dest.endswith("/"):
        fail(f"with more than one source, the destination must be a directory ending in /: {step.dest}/")
    owner = _owner(step.chown, fs.root, fail) if step.chown else None
    mode = _mode(step.chmod, fail) if step.chmod else None
    changed: set[str] = set()
    for src in sources:
        if src.is_dir():
            dest = _ensure_dir(fs.root, step.dest, fail)
            changed.add(within(fs.root, dest))
            for host, rel in walk(src):
                changed.add(_place(host, fs.root, within(fs.root, dest) + "/" + rel, fail, mode))
        elif step.add and src.is_file() and not src.is_symlink() and tarfile.is_tarfile(src):
            dest = _ensure_dir(fs.root, step.dest, fail)
            try:
                with tarfile.open(src) as tar:
                    changed |= extract_tar(tar, fs.root, within(fs.root, dest), src.name)
            except (tarfile.TarError, EOFError, OSError) as e:
                fail(f"{src.name}: cannot extract the archive ({e})")
            except BuildError as e:
                fail(str(e))
        else:
            dest_guest = step.dest
            existing = resolve(fs.root, step.dest)
            if into_dir or existing.is_dir():
                dest_guest = within(fs.root, _ensure_dir(fs.root, step.dest, fail)) + "/" + src.name
            changed.add(_place(src, fs.root, dest_guest, fail, mode))
    if owner:
        for path in changed:
            fs.owners[path] = owner
            host = fs.root / path.lstrip("/")
            if host.is_dir() and not host.is_symlink():
                for inner, _ in _walk_plain(host):
                    fs.owners[within(fs.root, inner)] = owner
    return changed


def _image_root(image: ImageBase, fs: _StageFS) -> Path:
    """A local image unpacked beside the stage's root, once per build."""
    root = fs.root.parent / ("image-" + image.id.split(":")[-1])
    if not root.is_dir():
        root.mkdir()
        for layer in _image_layers(image):
            apply_layer(root, layer)
    return root


_MAX_HOST_PATH = 4000  # below Linux's PATH_MAX: deeper is refused, not a traceback


def _walk_plain(top: Path) -> list[tuple[Path, str]]:
    """(host path, path relative to `top`) under a directory of a stage or an image, without
    recursion (a guest can make trees thousands of levels deep) and without following links."""
    out: list[tuple[Path, str]] = []
    todo = [""]
    while todo:
        rel_dir = todo.pop()
        with os.scandir(top / rel_dir if rel_dir else top) as it:
            entries = sorted((e.name, e.is_dir(follow_symlinks=False)) for e in it)
        subdirs = []
        for name, is_dir in entries:
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if len(str(top)) + len(rel) > _MAX_HOST_PATH:
                raise BuildError(f"{rel[:80]}...: a path too long to copy ({len(rel)} characters)")
            out.append((top / rel, rel))
            if is_dir:
                subdirs.append(rel)
        todo.extend(reversed(subdirs))
    return out


def _ensure_dir(root: Path, guest: str, fail) -> Path:
    host = resolve(root, guest)
    if host.exists() and not host.is_dir():
        fail(f"destination {guest} exists and is not a directory")
    host.mkdir(parents=True, exist_ok=True)
    return host


def _place(src: Path, root: Path, guest: str, fail, mode: int | None) -> str:
    """Copy one file, directory entry or symlink to `guest` inside `root`; return where it landed."""
    parent = resolve(root, posixpath.dirname(guest))
    if parent.exists() and not parent.is_dir():
        fail(f"cannot copy to {guest}: {posixpath.dirname(guest)} is not a directory")
    parent.mkdir(parents=True, exist_ok=True)
    target = parent / posixpath.basename(guest)
    if src.is_symlink():
        if target.is_symlink() or target.is_file():
            target.unlink()
        os.symlink(os.readlink(src), target)
    elif src.is_dir():
        if target.is_symlink() or target.is_file():
            target.unlink()
        target.mkdir(exist_ok=True)
        os.chmod(target, mode or (src.stat().st_mode & 0o7777))
    else:
        if target.is_symlink():
            target.unlink()
        elif target.is_dir():
            fail(f"cannot copy the file {src.name} over the directory {guest}")
        _copy_regular(src, target, fail)
        os.chmod(target, mode or (src.stat().st_mode & 0o7777))
    return within(root, target)


def _copy_regular(src: Path, target: Path, fail) -> None:
    """Copy a regular file; a FIFO, socket or device (from the context or an image) is refused
    without blocking on it or reading it forever."""
    try:
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        fail(f"{src.name}: cannot read it ({e.strerror}); only files, directories and symlinks can be copied")
    with os.fdopen(fd, "rb") as source:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            fail(f"{src.name}: is not a regular file; only files, directories and symlinks can be copied")
        with open(target, "wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)


def _owner(chown: str, root: Path, fail) -> tuple[int, int]:
    """USER[:GROUP] by name (from the image's /etc/passwd and /etc/group) or number; a user
    alone means its own primary group, as in Docker."""
    name, _, group = chown.partition(":")
    uid = users.user_id(root, name)
    if uid is None:
        fail(f"--chown: no user {name!r} in the image; use a numeric id")
    if not group:
        found = users.user(root, name)
        return uid, found.gid if found else uid
    gid = users.group_id(root, group)
    if gid is None:
        fail(f"--chown: no group {group!r} in the image; use a numeric id")
    return uid, gid


def _mode(chmod: str, fail) -> int:
    try:
        return int(chmod, 8) & 0o7777
    except ValueError:
        fail(f"--chmod={chmod}: expected an octal mode such as 755")


def _raise(path: str, line: int, message: str):
    raise DockerfileError(message, path, line)
