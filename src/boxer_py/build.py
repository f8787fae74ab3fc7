"""`boxer build`: Dockerfile -> instructions -> plan -> assembled rootfs -> image file."""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import imagefile
from .assemble import Progress, StepCache, assemble
from .bases import load_catalog
from .context import Context
from .parser import parse_file
from .plan import ImageBase, make_plan
from .runstep import Commands
from .store import Store, default_cache_dir


@dataclass(frozen=True)
class BuildResult:
    id: str
    path: Path
    size: int


def build(context: str | Path, output: str | Path | None, dockerfile: str | Path | None = None,
          build_args: dict[str, str] | None = None, target: str | None = None,
          tag: str | None = None, progress: Progress = lambda _: None, cache_dir: str | Path | None = None,
          skip_unsupported: bool = False, no_cache: bool = False) -> BuildResult:
    """Build `context` into the image file `output` and, with a `tag`, into the local store. RUN's Wasm programs run under Wasmtime with
    compiled modules cached in `cache_dir` (default: the run cache); `skip_unsupported` turns
    native tools in RUN (apt-get, curl...) into warnings instead of errors. RUN results are cached
    in `cache_dir` too; `no_cache` runs every step again."""
    context = Path(context)
    dockerfile = Path(dockerfile) if dockerfile else context / "Dockerfile"
    cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
    store = Store(cache_dir / "images")
    parsed = parse_file(dockerfile)
    plan = make_plan(parsed, load_catalog(), build_args, target, lambda ref: _find_image(ref, context, store))
    ctx = Context(context, str(dockerfile))
    launcher = []

    def run_in(*args, **kwargs):
        if not launcher:  # Wasmtime is loaded only when a RUN step runs a program
            from .launcher import Launcher
            launcher.append(Launcher(cache_dir))
        return launcher[0].run_in(*args, **kwargs)

    def commands(root: Path, labels: dict[str, str]) -> Commands:
        return Commands(root, lambda *args: run_in(*args, labels=labels), skip_unsupported,
                        lambda message: progress(f"    WARNING: {message}"))

    with tempfile.TemporaryDirectory(prefix="boxer-build-") as scratch:
        assembled = assemble(plan, ctx, Path(scratch), progress, commands, StepCache(cache_dir / "steps", not no_cache))
    annotations = {"org.opencontainers.image.ref.name": tag} if tag else None
    data, image_id = imagefile.encode(assembled.spec, assembled.layers, annotations)
    if output is not None:
        imagefile.write(output, data)
        progress(f"writing image {image_id[:19]} to {output} ({len(data) / 1e6:.1f} MB)")
    if tag:
        stored = store.add(data, tag, image_id)
        progress(f"naming to {stored.tag} ({image_id[:19]})")
        output = output if output is not None else stored.path
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
