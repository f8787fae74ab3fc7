"""`boxer build`: Dockerfile -> instructions -> plan -> assembled rootfs -> image file."""
from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from boxer_py.builder.assemble import Progress, StepCache, assemble
from boxer_py.builder.context import Context
from boxer_py.builder.mounts import read_secret
from boxer_py.builder.runstep import Commands, Ran
from boxer_py.dockerfile.bases import load_catalog
from boxer_py.dockerfile.parser import parse_file
from boxer_py.dockerfile.plan import ImageBase, make_plan
from boxer_py.errors import BuildError
from boxer_py.image import imagefile
from boxer_py.image.store import Store, check_tag, default_cache_dir

# Launcher.run_in's shape: (root, argv, env, workdir, stdin, labels=...) -> the run's result.
RunIn = Callable[..., Ran]


def _no_runtime(*args: object, **kwargs: object) -> Ran:
    raise BuildError("this build has no runtime for RUN's programs (pass run_in=)")


@dataclass(frozen=True)
class BuildResult:
    id: str
    path: Path
    size: int


def build(context: str | Path, output: str | Path | None, dockerfile: str | Path | None = None,
          build_args: dict[str, str] | None = None, target: str | None = None,
          tag: str | None = None, progress: Progress = lambda _: None, cache_dir: str | Path | None = None,
          skip_unsupported: bool = False, no_cache: bool = False,
          run_in: RunIn | None = None, secrets: dict[str, str | Path] | None = None) -> BuildResult:
    """Build `context` into the image file `output` and, with a `tag`, into the local store. RUN's Wasm programs run under Wasmtime with
    compiled modules cached in `cache_dir` (default: the run cache); `skip_unsupported` turns
    native tools in RUN (apt-get, curl...) into warnings instead of errors. RUN results are cached
    in `cache_dir` too; `no_cache` runs every step again. `run_in` runs a program of the rootfs
    being built (the runtime's Launcher.run_in; `boxer_py.build` passes it): without one, a RUN
    that runs a program fails. `secrets` (id -> a file on the host, see parse_secret) serve
    RUN --mount=type=secret: read once, never written to a layer, the image or the cache."""
    if tag is not None:
        tag = check_tag(tag)  # before any work: a bad tag must not cost a build
    secret_data = {ident: read_secret(Path(src), ident) for ident, src in (secrets or {}).items()}
    context = Path(context)
    dockerfile = Path(dockerfile) if dockerfile else context / "Dockerfile"
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    store = Store(cache_dir / "images")
    parsed = parse_file(dockerfile)
    plan = make_plan(parsed, load_catalog(), build_args, target, lambda ref: _find_image(ref, context, store))
    for warning in plan.warnings:
        progress(f"WARNING: {warning}")
    ctx = Context(context, str(dockerfile))
    runner = run_in or _no_runtime

    def commands(root: Path, labels: dict[str, str]) -> Commands:
        return Commands(root, lambda *args: runner(*args, labels=labels), skip_unsupported,
                        lambda message: progress(f"    WARNING: {message}"))

    # What RUN does depends on --skip-unsupported too: a step skipped with it is not the plain step.
    cache = StepCache(cache_dir / "steps", not no_cache, "skip-unsupported\n" if skip_unsupported else "")
    with tempfile.TemporaryDirectory(prefix="boxer-build-") as scratch:
        assembled = assemble(plan, ctx, Path(scratch), progress, commands, cache, secret_data)
    annotations = {"org.opencontainers.image.ref.name": tag} if tag else None
    data, image_id = imagefile.encode(assembled.spec, assembled.layers, annotations)
    if output is not None:
        imagefile.write(output, data)
        progress(f"writing image {image_id[:19]} to {output} ({len(data) / 1e6:.1f} MB)")
    if tag:
        stored = store.add(data, tag, image_id)
        progress(f"naming to {stored.tag} ({image_id[:19]})")
        output = output if output is not None else stored.path
    if output is None:  # neither an output nor a tag: Path(None) used to raise a TypeError here
        raise BuildError("build: give an output path or a tag")
    return BuildResult(image_id, Path(output), len(data))


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
