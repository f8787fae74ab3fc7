"""`boxer build`: Dockerfile -> instructions -> plan -> assembled rootfs -> image file."""
from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from boxer_py.builder import compiledin, osdeps
from boxer_py.builder.assemble import Progress, StepCache, assemble
from boxer_py.builder.context import Context
from boxer_py.builder.mounts import read_secret
from boxer_py.builder.runstep import Commands, Ran
from boxer_py.dockerfile.bases import load_catalog
from boxer_py.dockerfile.parser import parse, parse_file
from boxer_py.dockerfile.plan import BuildPlan, ImageBase, RunStep, make_plan
from boxer_py.errors import BuildError, DockerfileError
from boxer_py.image import imagefile
from boxer_py.image.store import Store, check_tag, default_cache_dir

# Launcher.run_in's shape: (root, argv, env, workdir, stdin, labels=...) -> the run's result.
RunIn = Callable[..., Ran]


def _no_runtime(*args: object, **kwargs: object) -> Ran:
    raise BuildError("this build has no runtime for RUN's programs (pass run_in=)")


@dataclass(frozen=True)
class BuildResult:
    """What build() made: the image's id (sha256 of its manifest), file and size."""

    id: str
    path: Path  # the -o file, else the image's file in the local store
    size: int
    tags: tuple[str, ...] = ()


def build(context: str | Path, output: str | Path | None, dockerfile: str | Path | None = None,
          build_args: dict[str, str] | None = None, target: str | None = None,
          tag: str | None = None, progress: Progress = lambda _: None, cache_dir: str | Path | None = None,
          skip_unsupported: bool = False, no_cache: bool = False,
          run_in: RunIn | None = None, secrets: dict[str, str | Path] | None = None,
          tags: Sequence[str] = (), labels: dict[str, str] | None = None,
          dockerfile_text: str | None = None, status: Callable[[str], None] | None = None) -> BuildResult:
    """Build `context` as `docker build` does: into the local store (under `tag` and `tags`,
    or untagged), and only into the image file `output` when one is given (then the store
    keeps it only if it is tagged). Nothing is ever written into the context unless `output`
    points there. The image id does not depend on the tags (they are not part of the image).

    RUN's Wasm programs run under Wasmtime with compiled modules cached in `cache_dir`
    (default: the run cache); `skip_unsupported` turns native tools in RUN (apt-get, curl...)
    into warnings instead of errors. RUN results are cached in `cache_dir` too; `no_cache` runs
    every step again. `run_in` runs a program of the rootfs being built (the runtime's
    Launcher.run_in; `boxer_py.build` passes it): without one, a RUN that runs a program fails.
    `secrets` (id -> a file on the host, see parse_secret) serve RUN --mount=type=secret: read
    once, never written to a layer, the image or the cache. `labels` are added to the image's
    (`--label`); `dockerfile_text` is the Dockerfile itself (`-f -`) instead of a file.
    `progress` gets BuildKit's plain lines; `status`, if given, a terminal's transient line
    (what pip downloads now)."""
    names = [check_tag(t) for t in ([tag] if tag else []) + list(tags)]  # before any work
    names = list(dict.fromkeys(names))
    secret_data = {ident: read_secret(Path(src), ident) for ident, src in (secrets or {}).items()}
    context = Path(context)
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    store = Store(cache_dir / "images")
    if dockerfile_text is not None:
        where = "Dockerfile (stdin)"
        parsed = parse(dockerfile_text, where)
    else:
        dockerfile = Path(dockerfile) if dockerfile else context / "Dockerfile"
        where = str(dockerfile)
        parsed = parse_file(dockerfile)
    catalog = load_catalog(cache_dir)
    ctx = Context(context, where)
    runner = run_in or _no_runtime
    native: list[str] = []  # what pip found no usable wheel for, in any stage

    def commands(root: Path, labels: dict[str, str]) -> Commands:
        return Commands(root, lambda *args, **kw: runner(*args, labels=labels, **kw), skip_unsupported,
                        lambda message: progress(f"    WARNING: {message}"), status, labels, native)

    # What RUN does depends on --skip-unsupported too (a step skipped with it is not the plain
    # step) and on the table of OS packages a build can do without (osdeps.py).
    salt = ("skip-unsupported\n" if skip_unsupported else "") + f"os-packages {osdeps.RULES_KEY}\n"
    cache = StepCache(cache_dir / "steps", not no_cache, salt)
    rebase: dict[int, str] = {}
    shown: set[str] = set()
    while True:
        plan = make_plan(parsed, catalog, build_args, target, lambda ref: _find_image(ref, context, store), rebase)
        for warning in plan.warnings:
            if warning not in shown:
                shown.add(warning)
                progress(f"WARNING: {warning}")
        native.clear()
        try:
            with tempfile.TemporaryDirectory(prefix="boxer-build-") as scratch:
                assembled = assemble(plan, ctx, Path(scratch), progress, commands, cache, secret_data)
            break
        except DockerfileError as e:
            again = _rebase(plan, e.line, native)
            if again is None or again[0] in rebase:
                raise
            rebase[again[0]] = again[1]
    spec = assembled.spec
    if labels:
        spec = replace(spec, config=replace(spec.config, labels={**spec.config.labels, **labels}))
    data, image_id = imagefile.encode(spec, assembled.layers)
    path = Path(output) if output is not None else None
    if path is not None:
        imagefile.write(path, data)
        progress(f"writing image {image_id[:19]} to {path} ({len(data) / 1e6:.1f} MB)")
    if names or path is None:
        stored = store.add(data, image_id, names)
        if path is None:
            progress(f"writing image {image_id[:19]} ({len(data) / 1e6:.1f} MB)")
        for name in names:
            progress(f"naming to {name}")
        path = path or stored.path
    return BuildResult(image_id, path, len(data), tuple(names))


def _rebase(plan: BuildPlan, line: int | None, native: list[str]) -> tuple[int, str] | None:
    """When a RUN at `line` failed because pip found no wheel for a package that its python
    stage's alternative runtime has compiled in: (that stage, why). The step cache keeps the
    second try cheap: the stages and steps before it are not built again."""
    failed = next((s for s in plan.stages if any(isinstance(step, RunStep) and step.line == line
                                                 for step in s.steps)), None)
    while failed is not None and failed.parent is not None:
        failed = plan.stages[failed.parent]
    if failed is None or failed.alternative is None:
        return None
    other = failed.alternative
    has = compiledin.parse(other.labels.get(compiledin.PROVIDES_LABEL + other.path, ""))
    name = next((n for n in native if n in has), None)
    return (failed.index, f"{has[name][0]} has no WASI wheel") if name else None


def _find_image(ref: str, context: Path, store: Store) -> ImageBase | None:
    """FROM / COPY --from of a local tag, or of an image file inside the build context."""
    if ref.endswith(".wasm"):
        path = (context / ref).resolve()
        if not path.is_file() or not path.is_relative_to(context.resolve()):
            return None
    else:
        found = store.find(ref)
        if found is None:
            return None
        path = found.path
    image = imagefile.read(path)
    return ImageBase(ref, str(path), image.id, image.spec.config, image.spec.history)


def parse_secret(spec: str) -> tuple[str, Path]:
    """`--secret id=NAME,src=FILE` (also `source=`, `type=file`, as Docker's) -> (NAME, FILE)."""
    opts: dict[str, str] = {}
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        if not sep or key.strip().lower() not in ("id", "src", "source", "type") or not value:
            raise BuildError(f"--secret {spec}: expected id=NAME,src=FILE")
        opts[key.strip().lower()] = value
    if opts.get("type", "file") != "file":
        raise BuildError(f"--secret {spec}: only type=file secrets are supported")
    src = opts.get("src") or opts.get("source")
    if not opts.get("id") or not src:
        raise BuildError(f"--secret {spec}: expected id=NAME,src=FILE")
    return opts["id"], Path(src)
