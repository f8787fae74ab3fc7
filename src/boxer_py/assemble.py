"""Executes a build plan: each stage's rootfs on disk, one layer tar per filesystem step.

Like kaniko's commands, every step reports the guest paths it changed; the layer is a
tar of exactly those. Metadata (ENV, CMD...) was already applied by the planner.
"""
from __future__ import annotations

import os
import posixpath
import shutil
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .bases import Base
from .config import ImageSpec
from .context import Context
from .errors import BuildError, DockerfileError
from .imagefile import sha256
from .plan import BuildPlan, CopyStep, MkdirStep, Stage
from .rootfs import copy_tree, extract_tar, layer_tar, resolve, within

Progress = Callable[[str], None]


@dataclass
class _StageFS:
    root: Path
    layers: list[bytes] = field(default_factory=list)
    owners: dict[str, tuple[int, int]] = field(default_factory=dict)


@dataclass(frozen=True)
class Assembled:
    spec: ImageSpec
    layers: list[bytes]


def assemble(plan: BuildPlan, context: Context, scratch: Path, progress: Progress = lambda _: None) -> Assembled:
    """Build the stages the target needs, in `scratch` (a private temp directory)."""
    built: dict[int, _StageFS] = {}
    needed = plan.needed()
    total = sum(1 + len(plan.stages[i].steps) for i in needed)
    counter = iter(range(1, total + 1))
    for index in needed:
        stage = plan.stages[index]
        label = f"{stage.name or 'stage-' + str(index)}"
        start = time.monotonic()
        fs = _start(stage, built, scratch / f"stage-{index}", plan)
        progress(f"#{next(counter)} [{label}] {stage.history[0]} ({time.monotonic() - start:.1f}s)")
        for step in stage.steps:
            start = time.monotonic()
            changed = _run_step(step, fs, context, built, plan)
            fs.layers.append(layer_tar(fs.root, changed, fs.owners))
            progress(f"#{next(counter)} [{label}] {step.text} ({time.monotonic() - start:.1f}s)")
        built[index] = fs
    final = built[plan.target]
    target = plan.stages[plan.target]
    spec = ImageSpec(target.config, tuple(sha256(layer) for layer in final.layers), _history(plan, plan.target))
    return Assembled(spec, final.layers)


def _history(plan: BuildPlan, index: int) -> tuple[str, ...]:
    stage = plan.stages[index]
    own = stage.history if stage.parent is None else stage.history[1:]
    return (_history(plan, stage.parent) if stage.parent is not None else ()) + own


def _start(stage: Stage, built: dict[int, _StageFS], root: Path, plan: BuildPlan) -> _StageFS:
    if stage.parent is not None:
        parent = built[stage.parent]
        copy_tree(parent.root, root)
        return _StageFS(root, list(parent.layers), dict(parent.owners))
    root.mkdir(parents=True)
    fs = _StageFS(root)
    if not stage.base.is_scratch:
        fs.layers.append(layer_tar(root, _install_base(stage.base, root), fs.owners))
    return fs


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
    return changed


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
    if step.from_stage is not None:
        src_root = built[step.from_stage].root
        sources = []
        for s in step.sources:
            host = resolve(src_root, s)
            if not os.path.lexists(host):
                fail(f"--from: {s}: no such file or directory in stage {step.from_stage}")
            sources.append(host)
        walk = _walk_plain
    else:
        sources = [p for s in step.sources for p in context.sources(s, step.line, kind)]
        walk = context.walk
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
        elif step.add and tarfile.is_tarfile(src):
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
                for dirpath, dirnames, filenames in os.walk(host):
                    for n in dirnames + filenames:
                        fs.owners[within(fs.root, Path(dirpath) / n)] = owner
    return changed


def _walk_plain(top: Path) -> list[tuple[Path, str]]:
    out = []
    for dirpath, dirnames, filenames in os.walk(top):
        for n in sorted(dirnames + filenames):
            host = Path(dirpath) / n
            out.append((host, host.relative_to(top).as_posix()))
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
        shutil.copyfile(src, target)
        os.chmod(target, mode or (src.stat().st_mode & 0o7777))
    return within(root, target)


def _owner(chown: str, root: Path, fail) -> tuple[int, int]:
    user, _, group = chown.partition(":")
    uid = _lookup_id(user, resolve(root, "/etc/passwd"), fail, "user")
    gid = _lookup_id(group, resolve(root, "/etc/group"), fail, "group") if group else uid
    return uid, gid


def _lookup_id(name: str, table: Path, fail, what: str) -> int:
    if name.isdigit():
        return int(name)
    if name == "root":
        return 0
    if table.is_file():
        for line in table.read_text(errors="replace").splitlines():
            fields = line.split(":")
            if len(fields) > 2 and fields[0] == name and fields[2].isdigit():
                return int(fields[2])
    fail(f"--chown: no {what} {name!r} in the image; use a numeric id")


def _mode(chmod: str, fail) -> int:
    try:
        return int(chmod, 8) & 0o7777
    except ValueError:
        fail(f"--chmod={chmod}: expected an octal mode such as 755")


def _raise(path: str, line: int, message: str):
    raise DockerfileError(message, path, line)
