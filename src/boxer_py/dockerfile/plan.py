"""Instructions -> a build plan: stages of filesystem steps plus each stage's final config.

Pure: variables are expanded, paths made absolute and metadata applied here, so the
assembler only executes steps. Like BuildKit, stages are explicit and `COPY --from`
is an edge, which makes `--target` and skipping unused stages fall out for free.
"""
from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from boxer_py.dockerfile import instructions as ins
from boxer_py.dockerfile.bases import Base, UnservedVersion, lookup, scientific, supported
from boxer_py.dockerfile.parser import Dockerfile, parse
from boxer_py.errors import DockerfileError
from boxer_py.image.config import History, ImageConfig
from boxer_py.image.variables import ExpansionTooLarge
from boxer_py.image.variables import expand as _expand

# A Dockerfile of a few bytes must not make the build host hold gigabytes (`ENV A=$A$A` doubles
# at each line): every expansion in a plan goes through _Expander, which bounds each result and
# what all of them add together; the environment as a whole is bounded too.
MAX_VALUE = 1 << 20  # characters of one expanded word or value
MAX_EXPANDED = 32 << 20  # characters that expansions may add over the whole Dockerfile
MAX_ENV = 4 << 20  # characters of a stage's ENV and ARG names and values together
# A guest path (WORKDIR, COPY destination) the build host can create: bounded below PATH_MAX,
# and in depth (a 3000-deep WORKDIR made the host recurse).
MAX_PATH = 2048
MAX_DEPTH = 128


@dataclass(frozen=True)
class ImageBase:
    """A boxer image used as a base or a COPY --from source: a local tag or an image file."""

    ref: str
    path: str  # the image file on the host
    id: str
    config: ImageConfig
    history: tuple[History, ...] = ()


# ref -> the image, or None: how the planner learns of local images without doing I/O itself.
ImageFinder = Callable[[str], "ImageBase | None"]


@dataclass(frozen=True)
class CopyStep:
    """COPY/ADD: context (or another stage's) paths into the rootfs."""

    line: int
    sources: tuple[str, ...]
    dest: str  # absolute guest path; a trailing "/" means "into this directory"
    from_stage: int | None = None
    chown: str | None = None
    chmod: str | None = None
    add: bool = False
    text: str = ""
    from_image: ImageBase | None = None
    parents: bool = False  # --parents: each source keeps its directories (those below a `/./`)
    exclude: tuple[str, ...] = ()  # --exclude patterns
    checksum: str | None = None  # ADD --checksum=sha256:...: the one source's digest


@dataclass(frozen=True)
class Mount:
    """A RUN --mount, checked: what the RUN sees at `target` and that never reaches a layer.
    bind: `source` of the context, or of stage `from_stage` / image `from_image`; secret: the
    build's secret `id` (at `target`, or in the variable `env`); tmpfs: an empty directory."""

    kind: str  # "bind", "secret" or "tmpfs"
    target: str  # absolute guest path ("" for a secret given only as env=)
    source: str = ""
    from_stage: int | None = None
    from_image: ImageBase | None = None
    id: str = ""
    required: bool = False
    env: str = ""


@dataclass(frozen=True)
class MkdirStep:
    """WORKDIR creates its directory, as Docker does."""

    line: int
    path: str
    text: str = ""


@dataclass(frozen=True)
class RunStep:
    """RUN: a shell script (shell form) or an argv (exec form), run against the rootfs with
    the environment Docker gives it: the stage's ENV plus its ARGs, its WORKDIR and USER."""

    line: int
    script: str | None
    argv: tuple[str, ...] | None
    env: tuple[tuple[str, str], ...]
    workdir: str
    user: str
    text: str = ""
    labels: tuple[tuple[str, str], ...] = ()  # the image's labels so far: what its base asks the sandbox for
    mounts: tuple[Mount, ...] = ()


Step = CopyStep | MkdirStep | RunStep


@dataclass(frozen=True)
class Stage:
    index: int
    name: str | None
    base: Base | ImageBase | None  # a runtime, scratch or an image; None when it builds on a stage
    parent: int | None  # the stage this one starts FROM
    steps: tuple[Step, ...]
    config: ImageConfig
    history: tuple[History, ...]  # the stage's instructions, the FROM first
    author: str = ""  # MAINTAINER
    # What is wrong with this stage that only matters if it is built (BuildKit does not look at
    # a stage the target does not need): (message, line), the first raised when it is needed.
    problems: tuple[tuple[str, int], ...] = ()
    # A python stage's other base: the runtime with the scientific stack compiled in, which the
    # builder plans it on instead (make_plan's `rebase`) when pip needs a native package it has.
    alternative: Base | None = None


@dataclass(frozen=True)
class BuildPlan:
    dockerfile: str
    stages: tuple[Stage, ...]
    target: int
    warnings: tuple[str, ...] = ()  # "Dockerfile:N: what the user should know", for the build log

    def needed(self) -> list[int]:
        """Indexes of the stages the target depends on, in build order."""
        want: set[int] = set()
        todo = [self.target]
        while todo:
            i = todo.pop()
            if i in want:
                continue
            want.add(i)
            stage = self.stages[i]
            if stage.parent is not None:
                todo.append(stage.parent)
            todo.extend(s.from_stage for s in stage.steps if isinstance(s, CopyStep) and s.from_stage is not None)
            todo.extend(m.from_stage for s in stage.steps if isinstance(s, RunStep)
                        for m in s.mounts if m.from_stage is not None)
        return sorted(want)


@dataclass
class _StageState:
    index: int
    name: str | None
    base: Base | ImageBase | None
    parent: int | None
    config: ImageConfig
    args: dict[str, str] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    history: list[History] = field(default_factory=list)
    author: str = ""
    problems: list[tuple[str, int]] = field(default_factory=list)
    alternative: Base | None = None

    def variables(self) -> dict[str, str]:
        return {**self.args, **self.config.env_dict()}

    def freeze(self) -> Stage:
        return Stage(self.index, self.name, self.base, self.parent, tuple(self.steps), self.config,
                     tuple(self.history), self.author, tuple(self.problems), self.alternative)


class _Expander:
    """Variable expansion for one plan, within MAX_VALUE per result and MAX_EXPANDED in all."""

    def __init__(self, path: str):
        self.path, self.line, self.added = path, 0, 0

    def __call__(self, text: str, variables: dict[str, str]) -> str:
        try:
            out = _expand(text, variables, MAX_VALUE)
        except ExpansionTooLarge:
            raise DockerfileError(f"a variable expands to more than {MAX_VALUE} characters (does a value refer to "
                                  "itself, as in ENV A=$A$A?)", self.path, self.line) from None
        self.added += max(0, len(out) - len(text))
        if self.added > MAX_EXPANDED:
            raise DockerfileError(f"variable expansions add up to more than {MAX_EXPANDED} characters",
                                  self.path, self.line)
        return out


def make_plan(dockerfile: Dockerfile, catalog: dict[str, Base], build_args: dict[str, str] | None = None,
              target: str | None = None, images: ImageFinder = lambda _: None,
              rebase: dict[int, str] | None = None) -> BuildPlan:
    """`rebase`: stage index -> why ("pandas has no WASI wheel"): those python stages start
    on their `alternative` base instead, with a warning saying so."""
    build_args = dict(build_args or {})
    path = dockerfile.path

    def fail(message: str, line: int):
        raise DockerfileError(message, path, line)

    warnings: list[str] = []

    def warn(message: str, line: int) -> None:
        warnings.append(f"{path}:{line}: {message}")

    global_args: dict[str, str] = {}
    stages: list[_StageState] = []
    expand = _Expander(path)
    for i in dockerfile.instructions:
        expand.line = i.line
        if isinstance(i, ins.Arg) and not stages:
            value = build_args.get(i.name, expand(i.default, global_args) if i.default is not None else None)
            if value is not None:
                global_args[i.name] = value
            continue
        if isinstance(i, ins.From):
            stages.append(_start_stage(i, len(stages), stages, catalog, images, global_args, fail, warn, expand,
                                       (rebase or {}).get(len(stages))))
            triggers = stages[-1].config.on_build if stages[-1].parent is None else ()
            if triggers:  # Docker runs a base image's ONBUILD triggers first, and clears them
                stages[-1].config = replace(stages[-1].config, on_build=())
                for trigger in _triggers(triggers, path, i.line):
                    _apply(stages[-1], trigger, stages, build_args, global_args, images, fail, expand)
            continue
        _apply(stages[-1], i, stages, build_args, global_args, images, fail, expand)
        env = stages[-1].variables()
        if sum(len(k) + len(v) for k, v in env.items()) > MAX_ENV:
            fail(f"the environment (ENV and ARG) is larger than {MAX_ENV} characters", i.line)

    frozen = tuple(s.freeze() for s in stages)
    if target is None:
        index = len(frozen) - 1
    else:
        found = _stage_index(target.lower(), stages)
        if found is None:
            names = ", ".join(s.name for s in stages if s.name) or "none are named"
            raise DockerfileError(f"target stage {target!r} not found (stages: {names})", path)
        index = found
    plan = BuildPlan(path, frozen, index, tuple(warnings))
    for needed in plan.needed():
        for message, line in frozen[needed].problems[:1]:
            fail(message, line)
    return plan


def _triggers(triggers: tuple[str, ...], path: str, line: int) -> list[ins.Instruction]:
    """A base image's ONBUILD triggers as instructions, reported at the FROM that runs them."""
    try:
        parsed = parse("FROM scratch\n" + "\n".join(t.replace("\n", " ") for t in triggers), path)
    except DockerfileError as e:
        raise DockerfileError(f"the base image's ONBUILD trigger is invalid: {e.reason}", path, line) from None
    return [replace(t, line=line) for t in parsed.instructions[1:]]


def _stage_index(ref: str, stages: list[_StageState]) -> int | None:
    for s in stages:
        if s.name == ref:
            return s.index
    if ref.isdigit() and int(ref) < len(stages):
        return int(ref)
    return None


def _start_stage(i: ins.From, index: int, stages: list[_StageState], catalog: dict[str, Base],
                 images: ImageFinder, global_args: dict[str, str], fail, warn, expand: _Expander,
                 rebased: str | None = None) -> _StageState:
    image = expand(i.image, global_args)
    parent = _stage_index(image.lower(), stages) if not image.isdigit() else None
    if parent is not None:
        p = stages[parent]
        return _StageState(index, i.name, None, parent, p.config, history=[History(f"FROM {image}", True)],
                           author=p.author)
    try:
        found = lookup(catalog, image)
    except UnservedVersion as e:
        return _unbuildable(i, index, f"unsupported base image {image!r}: {e}")
    if found is None:
        local = images(image)
        if local is not None:
            return _StageState(index, i.name, local, None, local.config, history=[History(f"FROM {image}", True)])
        return _unbuildable(i, index, f"unsupported base image {image!r}: a native Linux image cannot run under "
                            f"WASI; use one of the WebAssembly bases: {supported(catalog)}")
    base = found.base
    other = scientific(catalog)
    alternative = other if base.name == "python" and other is not None else None
    if rebased and alternative is not None:
        warn(f"{image}: {rebased}; this stage uses {alternative.title or alternative.name} instead of CPython "
             f"{'.'.join(base.python.split('.')[:2])}", i.line)
        base = alternative
    else:
        for warning in found.warnings:
            warn(warning, i.line)
    config = ImageConfig(env=base.env, cmd=base.cmd, labels=dict(base.labels))
    return _StageState(index, i.name, base, None, config, history=[History(f"FROM {image}", base.is_scratch)],
                       alternative=alternative)


PYTHONPATH_LABEL = "boxer.pythonpath"


def _keep_site_packages(c: ImageConfig) -> ImageConfig:
    """A base whose CPython cannot find its own site-packages (label PYTHONPATH_LABEL, see
    bases.toml) keeps it on PYTHONPATH: appended when an ENV replaced the variable, so
    `ENV PYTHONPATH=/app` does not hide what pip installed (in this image, its export, the browser)."""
    site = c.labels.get(PYTHONPATH_LABEL)
    current = c.env_dict().get("PYTHONPATH")
    if not site or current is None or site in current.split(":"):
        return c
    return c.with_env("PYTHONPATH", f"{current}:{site}" if current else site)


def _apply_meta(st: _StageState, i: ins.Instruction, v: dict[str, str], expand: _Expander) -> tuple[ImageConfig, str]:
    """HEALTHCHECK, SHELL, ONBUILD and MAINTAINER: the config (or the author) only, as Docker records them."""
    c = st.config
    if isinstance(i, ins.Healthcheck):
        if i.test == ("NONE",):
            health: dict = {"Test": ("NONE",)}
        else:
            health = {"Test": i.test}  # not expanded: HEALTHCHECK is not among Docker's expanding instructions
            health.update({k: n for k, n in (("Interval", i.interval), ("Timeout", i.timeout),
                                             ("StartPeriod", i.start_period), ("StartInterval", i.start_interval),
                                             ("Retries", i.retries)) if n})
        c = replace(c, healthcheck=health)
        text = f"HEALTHCHECK {list(health['Test'])}"
    elif isinstance(i, ins.Shell):
        c = replace(c, shell=i.argv)
        text = f"SHELL {list(i.argv)}"
    elif isinstance(i, ins.OnBuild):
        c = replace(c, on_build=c.on_build + (i.expression,))
        text = f"ONBUILD {i.expression}"
    elif isinstance(i, ins.Maintainer):
        st.author = i.name
        text = f"MAINTAINER {i.name}"
    return c, text


def _unbuildable(i: ins.From, index: int, why: str) -> _StageState:
    """A stage whose base cannot be had: an error only if the target needs the stage."""
    return _StageState(index, i.name, None, None, ImageConfig(), history=[History(f"FROM {i.image}", True)],
                       problems=[(why, i.line)])


def _argv_config(argv: tuple[str, ...], shell: bool, shell_argv: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Shell form is recorded the way Docker records it; the launcher runs it without a shell.
    Under a SHELL of the sh family (bash, dash...) it stays `/bin/sh -c`: the image's only shell
    is the launcher's sh, so that is what runs it (Docker would record the SHELL's argv)."""
    if not shell:
        return argv
    if shell_argv and posixpath.basename(shell_argv[0]) not in _SHELLS:
        return (*shell_argv, argv[0])
    return ("/bin/sh", "-c", argv[0])


def _guest_path(path: str, what: str, line: int, fail) -> str:
    if len(path) > MAX_PATH or path.count("/") > MAX_DEPTH:
        fail(f"{what}: the path is too long ({len(path)} characters, {path.count('/')} levels; at most {MAX_PATH} "
             f"and {MAX_DEPTH})", line)
    return path


def _apply(st: _StageState, i: ins.Instruction, stages: list[_StageState], build_args: dict[str, str],
           global_args: dict[str, str], images: ImageFinder, fail, expand: _Expander) -> None:
    c = st.config
    steps_before = len(st.steps)
    v = st.variables()
    if isinstance(i, (ins.Healthcheck, ins.Shell, ins.OnBuild, ins.Maintainer)):
        st.config, text = _apply_meta(st, i, v, expand)
        st.history.append(History(text, empty_layer=True))
        return
    if isinstance(i, ins.Arg):
        default = expand(i.default, v) if i.default is not None else global_args.get(i.name)
        value = build_args.get(i.name, default)
        if value is not None:
            st.args[i.name] = value
        return
    if isinstance(i, ins.Env):
        for key, val in i.pairs:
            c = c.with_env(key, expand(val, {**st.args, **c.env_dict()}))
        c = _keep_site_packages(c)
        text = "ENV " + " ".join(f"{k}={expand(val, v)}" for k, val in i.pairs)
    elif isinstance(i, ins.Workdir):
        path = posixpath.normpath(posixpath.join(c.working_dir, expand(i.path, v)))
        path = _guest_path("/" + path.lstrip("/"), "WORKDIR", i.line, fail)
        c = replace(c, working_dir=path)
        text = f"WORKDIR {path}"
        st.steps.append(MkdirStep(i.line, path, text))
    elif isinstance(i, ins.Copy):
        sources = tuple(expand(s, v) for s in i.sources)
        dest = expand(i.dest, v)
        trailing = dest.endswith("/") or dest in (".", "..") or dest.endswith("/.")
        dest = posixpath.normpath(posixpath.join(c.working_dir, dest))
        dest = "/" + dest.lstrip("/") + ("/" if trailing and dest != "/" else "")
        _guest_path(dest, "COPY" if not i.add else "ADD", i.line, fail)
        from_stage, from_image, ref = None, None, ""
        kind = "ADD" if i.add else "COPY"
        if i.from_stage is not None:
            ref = expand(i.from_stage, v)
            from_stage = _stage_index(ref.lower(), stages[: st.index])
            from_image = images(ref) if from_stage is None else None
            if from_stage is None and from_image is None:
                st.problems.append((f"{kind} --from={ref}: no earlier stage, local image or image file of that "
                                    "name", i.line))
        if i.checksum and (len(sources) != 1 or i.parents):
            fail("ADD --checksum: exactly one source file is checked, not several", i.line)
        flags = "".join(f"--{n} " for n, on in (("link", i.link), ("parents", i.parents)) if on)
        flags += "".join(f"--exclude={e} " for e in i.exclude)
        chmod = _check_chmod(i.chmod, kind, i.line, fail) if i.chmod else None
        flags += f"--chmod={chmod} " if chmod else ""
        text = f"{kind} {'--from=' + ref + ' ' if i.from_stage else ''}{flags}{' '.join(sources)} {dest}"
        st.steps.append(CopyStep(i.line, sources, dest, from_stage, expand(i.chown, v) if i.chown else None,
                                 chmod, i.add, text, from_image, i.parents,
                                 tuple(expand(e, v) for e in i.exclude), i.checksum))
    elif isinstance(i, ins.Run):
        _check_run_flags(i, fail)
        mounts = tuple(_mount(spec, st, stages, images, i.line, fail, expand) for spec in i.mounts)
        env = tuple({**st.args, **c.env_dict()}.items())
        script: str | None
        argv: tuple[str, ...] | None
        if i.shell:
            script, argv = i.command[0], None
            shown = script.replace("\n", " \\n ")  # one log line
        else:
            script, argv = None, i.command
            shown = str(list(argv))
        if i.shell and c.shell and posixpath.basename(c.shell[0]) not in _SHELLS:
            fail(f"RUN: the SHELL {list(c.shell)} cannot run here; the build's shell is a POSIX sh "
                 '(SHELL ["/bin/sh", "-c"] or ["/bin/bash", "-c"])', i.line)
        text = "RUN " + "".join(f"--mount={m} " for m in i.mounts) + shown
        st.steps.append(RunStep(i.line, script, argv, env, c.working_dir, c.user, text, tuple(c.labels.items()),
                                tuple(m for m in mounts if m is not None)))
    elif isinstance(i, ins.Label):
        c = replace(c, labels={**c.labels, **{expand(k, v): expand(val, v) for k, val in i.pairs}})
        text = "LABEL " + " ".join(f"{k}={val}" for k, val in i.pairs)
    elif isinstance(i, ins.Expose):
        ports = []
        for p in i.ports:
            p = expand(p, v)
            num, _, proto = p.partition("/")
            if not num.replace("-", "").isdigit() or proto not in ("", "tcp", "udp", "sctp"):
                fail(f"EXPOSE: invalid port {p!r}, expected PORT[/tcp|udp]", i.line)
            ports.append(f"{num}/{proto or 'tcp'}")
        c = replace(c, exposed_ports=tuple(dict.fromkeys(c.exposed_ports + tuple(ports))))
        text = "EXPOSE " + " ".join(ports)
    elif isinstance(i, ins.User):
        c = replace(c, user=expand(i.user, v))
        text = f"USER {c.user}"
    elif isinstance(i, ins.Volume):
        c = replace(c, volumes=tuple(dict.fromkeys(c.volumes + tuple(expand(p, v) for p in i.paths))))
        text = "VOLUME " + " ".join(i.paths)
    elif isinstance(i, ins.StopSignal):
        c = replace(c, stop_signal=expand(i.signal, v))
        text = f"STOPSIGNAL {c.stop_signal}"
    elif isinstance(i, ins.Entrypoint):
        # Docker: setting ENTRYPOINT drops a CMD inherited from the base.
        c = replace(c, entrypoint=_argv_config(i.argv, i.shell, c.shell), cmd=() if not _own_cmd(st) else c.cmd)
        text = f"ENTRYPOINT {list(c.entrypoint)}"
    elif isinstance(i, ins.Cmd):
        c = replace(c, cmd=_argv_config(i.argv, i.shell, c.shell))
        text = f"CMD {list(c.cmd)}"
    else:  # pragma: no cover - the parser produces only the types above
        fail(f"{type(i).__name__.upper()} is not supported", i.line)
    st.config = c
    st.history.append(History(text, empty_layer=len(st.steps) == steps_before))   # each step is one layer


_SHELLS = ("sh", "bash", "dash", "ash")  # SHELLs whose `-c` the build's POSIX shell stands in for
_MOUNT_KEYS = {
    "bind": {"type", "target", "dst", "destination", "source", "src", "from", "rw", "readwrite", "readonly", "ro"},
    "secret": {"type", "id", "target", "dst", "destination", "required", "mode", "uid", "gid", "env"},
    "tmpfs": {"type", "target", "dst", "destination", "size"},
    "cache": {"type", "id", "target", "dst", "destination", "source", "src", "from", "sharing", "mode", "uid", "gid",
              "rw", "readwrite", "readonly", "ro"},
}


def _check_run_flags(i: ins.Run, fail) -> None:
    """There is never a network: only --network=none/default are accepted."""
    if i.network not in (None, "none", "default"):
        fail(f"RUN --network={i.network}: a build has no network; use --network=none or leave it out", i.line)


def _mount(spec: str, st: _StageState, stages: list[_StageState], images: ImageFinder, line: int, fail,
           expand: _Expander) -> Mount | None:
    """One --mount=type=...,key=value,... as BuildKit reads it; None for type=cache (pip's cache
    is the host's, so there is nothing to share between builds)."""
    opts: dict[str, str] = {}
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if key in ("rw", "readwrite", "readonly", "ro", "required") and not sep:
            value = "true"
        opts[key] = expand(value, st.variables())
    kind = opts.get("type", "bind")
    if kind == "ssh":
        fail("RUN --mount=type=ssh: a build has no network, so there is nothing to reach with SSH", line)
    if kind not in _MOUNT_KEYS:
        fail(f"RUN --mount=type={kind}: unknown mount type (bind, cache, tmpfs, secret)", line)
    unknown = sorted(set(opts) - _MOUNT_KEYS[kind])
    if unknown:
        fail(f"RUN --mount=type={kind}: unknown option {unknown[0]!r}", line)
    if kind == "cache":
        return None
    target = opts.get("target") or opts.get("dst") or opts.get("destination") or ""
    if kind == "secret":
        ident = opts.get("id") or posixpath.basename(target)
        if not ident:
            fail("RUN --mount=type=secret: needs id=NAME (the --secret id given to boxer build)", line)
        env = opts.get("env", "")
        target = target or ("" if env else f"/run/secrets/{ident}")
        required = opts.get("required", "false").lower() == "true"
    elif not target:
        fail(f"RUN --mount=type={kind}: needs target=PATH", line)
    if target:
        target = posixpath.normpath(posixpath.join(st.config.working_dir, target))
        target = _guest_path("/" + target.lstrip("/"), "RUN --mount", line, fail)
        if target == "/":
            fail(f"RUN --mount=type={kind}: cannot mount over /", line)
    if kind == "tmpfs":
        return Mount("tmpfs", target)
    if kind == "secret":
        return Mount("secret", target, id=ident, required=required, env=env)
    source = opts.get("source") or opts.get("src") or "/"
    from_stage, from_image = None, None
    if "from" in opts:
        from_stage = _stage_index(opts["from"].lower(), stages[: st.index])
        from_image = images(opts["from"]) if from_stage is None else None
        if from_stage is None and from_image is None:
            st.problems.append((f"RUN --mount=from={opts['from']}: no earlier stage, local image or image file "
                                "of that name", line))
    return Mount("bind", target, source, from_stage, from_image)


_SYMBOLIC = r"[ugoa]*[-+=][rwxXst]*"


def _check_chmod(chmod: str, kind: str, line: int, fail) -> str:
    """An octal mode (755, 0644) or, as BuildKit allows, a symbolic one (u+x, go=rX,u=rwx)."""
    if re.fullmatch(r"[0-7]{1,4}", chmod) or re.fullmatch(f"{_SYMBOLIC}(,{_SYMBOLIC})*", chmod):
        return chmod
    fail(f"{kind} --chmod={chmod}: expected an octal mode such as 755 or a symbolic one such as u=rwx,go=rx", line)
    return ""


def _own_cmd(st: _StageState) -> bool:
    return any(h.created_by.startswith("CMD ") for h in st.history)
