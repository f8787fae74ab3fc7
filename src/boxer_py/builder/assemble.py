"""Executes a build plan: each stage's rootfs on disk, one layer tar per filesystem step.

Like kaniko's commands, every step reports the guest paths it changed; the layer is a
tar of exactly those. Metadata (ENV, CMD...) was already applied by the planner.
"""
from __future__ import annotations

import io
import os
import posixpath
import shutil
import tarfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NoReturn

from boxer_py.builder import gitsource
from boxer_py.builder.context import Context, _pattern_regex
from boxer_py.builder.files import ensure_dir as _ensure_dir
from boxer_py.builder.files import file_digest as _file_digest
from boxer_py.builder.files import image_layers as _image_layers
from boxer_py.builder.files import image_root
from boxer_py.builder.files import place as _place
from boxer_py.builder.files import walk_plain as _walk_plain
from boxer_py.builder.mounts import Mounts, bound_digest
from boxer_py.builder.runstep import Commands, execute
from boxer_py.dockerfile.bases import Base
from boxer_py.dockerfile.plan import BuildPlan, CopyStep, ImageBase, MkdirStep, RunStep, Stage
from boxer_py.errors import BoxerError, BuildError, DockerfileError
from boxer_py.image import users
from boxer_py.image.config import History, ImageSpec, is_root
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
             commands: Callable[[Path, dict[str, str]], Commands] | None = None, cache: StepCache = StepCache(None),
             secrets: dict[str, bytes] | None = None) -> Assembled:
    """Build the stages the target needs, in `scratch` (a private temp directory).
    `commands(root, labels)` serves RUN's non-shell commands (Wasm programs, pip) for a stage;
    `secrets` (id -> content) serve RUN --mount=type=secret, and are never part of a layer or a
    cache key."""
    secrets = secrets or {}
    built: dict[int, _StageFS] = {}
    needed = plan.needed()
    counter = iter(range(1, 1 + sum(1 + len(plan.stages[i].steps) for i in needed)))
    for index in needed:
        stage = plan.stages[index]
        # BuildKit's step names: [k/N] in a one-stage build, [NAME k/N] with several stages
        name = f"{stage.name or 'stage-' + str(index)} " if len(needed) > 1 or stage.name else ""
        steps = 1 + len(stage.steps)
        n, start = next(counter), time.monotonic()
        progress(f"#{n} [{name}1/{steps}] {stage.history[0].created_by}")
        fs = _start(stage, built, scratch / f"stage-{index}", plan)
        fs.key = fs.key or sha256("\n".join(sha256(layer) for layer in fs.layers).encode())
        progress(f"#{n} DONE {time.monotonic() - start:.1f}s")
        for k, step in enumerate(stage.steps, 2):
            n, start = next(counter), time.monotonic()
            progress(f"#{n} [{name}{k}/{steps}] {step.text}")
            if isinstance(step, RunStep):
                bound = bound_digest(step, context, built, plan) if step.mounts else ""
                # a git+ URL's branch is looked up now: its commit is part of the key
                pins = gitsource.pins(step.script or " ".join(step.argv or ()), step.workdir, fs.root) \
                    if cache.directory else ""
                key = sha256(f"{fs.key}\n{cache.salt}{replace(step, line=0)!r}{bound}{pins}".encode())
                layer = cache.get(key)
                if layer is not None:
                    fs.owners.update(apply_layer(fs.root, layer))
                    progress(f"#{n} CACHED")
                else:
                    with _Echo(progress, n, start) as echo:
                        layer = _run(step, fs, plan, commands, echo, Mounts(step, fs, context, built, plan, secrets))
                    cache.put(key, layer)
                    progress(f"#{n} DONE {time.monotonic() - start:.1f}s")
            else:
                # Exactly the paths the step placed: a COPY into / or a WORKDIR of a full
                # directory must not take in what earlier layers put there.
                layer = layer_tar(fs.root, _run_step(step, fs, context, built, plan), fs.owners, recursive=False)
                progress(f"#{n} DONE {time.monotonic() - start:.1f}s")
            fs.layers.append(layer)
            fs.key = sha256(f"{fs.key}\n{sha256(layer)}".encode())
        built[index] = fs
    final = built[plan.target]
    target = plan.stages[plan.target]
    spec = ImageSpec(target.config, tuple(sha256(layer) for layer in final.layers), _history(plan, plan.target),
                     target.author)
    return Assembled(spec, final.layers)


class _Echo:
    """A RUN's output as BuildKit's plain progress prints it: each line as it comes, after the
    step number and the seconds since the step began (`#5 1.203 Collecting six`); a last
    line without a newline when the step ends."""

    def __init__(self, progress: Progress, number: int, start: float):
        self.progress, self.number, self.start = progress, number, start
        self.pending = b""

    def __call__(self, data: bytes) -> None:
        *lines, self.pending = (self.pending + data).split(b"\n")
        for line in lines:
            self._show(line)
        if len(self.pending) > 1 << 16:  # a progress bar without newlines: shown in pieces
            self._show(self.pending)
            self.pending = b""

    def _show(self, line: bytes) -> None:
        text = line.decode(errors="replace").rstrip("\r").rsplit("\r", 1)[-1]
        self.progress(f"#{self.number} {time.monotonic() - self.start:.3f} {text}")

    def __enter__(self) -> _Echo:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pending:
            self._show(self.pending)
            self.pending = b""


def _history(plan: BuildPlan, index: int) -> tuple[History, ...]:
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
    # No base and no parent is an unbuildable stage, which make_plan refuses when it is needed.
    assert stage.base is not None, "a needed stage starts FROM a stage (above) or a base"
    root.mkdir(parents=True)
    fs = _StageFS(root)
    if isinstance(stage.base, ImageBase):
        for layer in _image_layers(stage.base):
            fs.owners.update(apply_layer(root, layer))
            fs.layers.append(layer)
    elif not stage.base.is_scratch:
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
    for extra in base.files:
        target = resolve(root, extra.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        changed.add(extra.path)
        if extra.text or extra.guest:
            target.write_bytes(extra.content())
            os.chmod(target, 0o644)
            continue
        source = base.pinned(extra.file, extra.sha256)
        if extra.unpack:
            _unpack_member(source, extra.unpack, target)
        else:
            shutil.copyfile(source, target)
            os.chmod(target, 0o644)
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


def _run(step: RunStep, fs: _StageFS, plan: BuildPlan, commands, echo: Callable[[bytes], None],
         mounts: Mounts) -> bytes:
    """RUN: execute (its output goes to `echo` as it is written), then the layer is what changed
    between snapshots (deletions as whiteouts). The mounts are in place only while it runs, so
    nothing of them reaches the layer."""
    if commands is None:
        raise DockerfileError("RUN needs a runtime to run programs at build time", plan.dockerfile, step.line)
    before = snapshot(fs.root)
    try:
        with mounts as env:
            result = execute(replace(step, env=step.env + tuple(env.items())) if env else step, fs.root,
                             commands(fs.root, dict(step.labels)), echo)
    except BoxerError as e:
        if isinstance(e, DockerfileError):
            raise
        raise DockerfileError(f"RUN: {e}", plan.dockerfile, step.line) from None
    log = result.log.decode(errors="replace").splitlines()
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
    # (host path, where it is kept below the destination with --parents, its path for --exclude)
    found: list[tuple[Path, str, str]] = []
    if step.from_stage is not None or step.from_image is not None:
        if step.from_image is not None:
            src_root = image_root(step.from_image, fs.root.parent)
        else:
            assert step.from_stage is not None  # the branch's condition, with no --from image
            src_root = built[step.from_stage].root
        for s in step.sources:
            host = resolve(src_root, s)
            if not os.path.lexists(host):
                fail(f"--from: {s}: no such file or directory in "
                     + (f"stage {step.from_stage}" if step.from_image is None else step.from_image.ref))
            rel = posixpath.normpath(s).lstrip("/")
            found.append((host, _kept(s, rel), rel))
        walk = _walk_plain
    else:
        for s in step.sources:
            for host in context.sources(s, step.line, kind):
                rel = host.relative_to(context.root).as_posix()
                found.append((host, _kept(s, rel), rel))
        walk = lambda top: context.walk(top, step.line, kind)  # noqa: E731
    excluded = _excluder(step.exclude)
    found = [f for f in found if not excluded(f[2], posixpath.basename(f[2]))]
    sources = [f[0] for f in found]
    if step.checksum:
        _check_digest(sources, step.checksum, fail)
    into_dir = step.dest.endswith("/") or len(sources) > 1 or step.parents
    if len(sources) > 1 and not step.dest.endswith("/") and not step.parents:
        fail(f"with more than one source, the destination must be a directory ending in /: {step.dest}/")
    owner = _owner(step.chown, fs.root, fail) if step.chown else None
    mode = _mode(step.chmod, fail) if step.chmod else None
    changed: set[str] = set()
    for src, kept, rel_src in found:
        dest_dir = step.dest
        if step.parents:  # --parents: the source's directories are kept under the destination
            parent = posixpath.dirname(kept) if not src.is_dir() or src.is_symlink() else kept
            dest_dir = step.dest.rstrip("/") + "/" + parent + "/" if parent not in ("", ".") else step.dest
            if src.is_dir() and not src.is_symlink():
                made = _ensure_dir(fs.root, dest_dir, fail)
                for path in _parents_made(fs.root, step.dest, made):
                    changed.add(path)
        if src.is_dir():
            dest = _ensure_dir(fs.root, dest_dir, fail)
            changed.add(within(fs.root, dest))
            for host, rel in walk(src):
                if excluded(rel, posixpath.basename(rel), rel_src + "/" + rel):
                    continue
                changed.add(_place(host, fs.root, within(fs.root, dest) + "/" + rel, fail, mode))
        elif step.add and src.is_file() and not src.is_symlink() and tarfile.is_tarfile(src):
            dest = _ensure_dir(fs.root, dest_dir, fail)
            try:
                with tarfile.open(src) as tar:
                    changed |= extract_tar(tar, fs.root, within(fs.root, dest), src.name)
            except (tarfile.TarError, EOFError, OSError) as e:
                fail(f"{src.name}: cannot extract the archive ({e})")
            except BuildError as e:
                fail(str(e))
        else:
            dest_guest = dest_dir
            existing = resolve(fs.root, dest_dir)
            if into_dir or existing.is_dir():
                made = _ensure_dir(fs.root, dest_dir, fail)
                changed.update(_parents_made(fs.root, step.dest, made) if step.parents else ())
                dest_guest = within(fs.root, made) + "/" + src.name
            changed.add(_place(src, fs.root, dest_guest, fail, mode))
    if owner:
        for path in changed:
            fs.owners[path] = owner
            host = fs.root / path.lstrip("/")
            if host.is_dir() and not host.is_symlink():
                for inner, _ in _walk_plain(host):
                    fs.owners[within(fs.root, inner)] = owner
    return changed


def _kept(source: str, rel: str) -> str:
    """What COPY --parents keeps of a matched path: all of it, or what follows a `/./` pivot
    in the source as written (`COPY --parents ./src/./app/*.py /dst/` keeps app/...)."""
    if "/./" not in source:
        return rel
    prefix = posixpath.normpath(source.split("/./", 1)[0]).lstrip("/")
    prefix = "" if prefix == "." else prefix
    return posixpath.relpath(rel, prefix) if prefix and (rel + "/").startswith(prefix + "/") else rel


def _parents_made(root: Path, dest: str, made: Path) -> set[str]:
    """The directories between `dest` and `made` (for --parents, whose layer must list them)."""
    out, guest = set(), within(root, made)
    top = within(root, resolve(root, dest))
    while guest.startswith(top) and guest != top:
        out.add(guest)
        guest = posixpath.dirname(guest)
    return out


def _excluder(patterns: tuple[str, ...]) -> Callable[..., bool]:
    """--exclude: a pattern (.dockerignore syntax, `**` too) matches a path of the source or its name."""
    regexes = [_pattern_regex(posixpath.normpath(p).lstrip("/")) for p in patterns]
    return lambda *paths: any(r.match(p) for r in regexes for p in paths)


def _check_digest(sources: list[Path], checksum: str, fail) -> None:
    """ADD --checksum=sha256:HEX: the one source must be a regular file with that digest."""
    if len(sources) != 1 or sources[0].is_symlink() or not sources[0].is_file():
        fail(f"--checksum={checksum}: the source must be one regular file")
    digest = _file_digest(sources[0])
    if "sha256:" + digest != checksum:
        fail(f"--checksum: {sources[0].name} has the digest sha256:{digest}, not the expected {checksum}")


def _owner(chown: str, root: Path, fail: Callable[[str], NoReturn]) -> tuple[int, int]:
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


def _mode(chmod: str, fail) -> int | str:
    """An octal mode as a number; a symbolic one (checked by the planner) as written, applied per file."""
    try:
        return int(chmod, 8) & 0o7777
    except ValueError:
        return chmod


def _raise(path: str, line: int, message: str) -> NoReturn:
    raise DockerfileError(message, path, line)


