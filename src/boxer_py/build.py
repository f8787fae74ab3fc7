"""`boxer build`: Dockerfile -> instructions -> plan -> assembled rootfs -> image file."""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import imagefile
from .assemble import Progress, assemble
from .bases import load_catalog
from .context import Context
from .parser import parse_file
from .plan import make_plan


@dataclass(frozen=True)
class BuildResult:
    id: str
    path: Path
    size: int


def build(context: str | Path, output: str | Path, dockerfile: str | Path | None = None,
          build_args: dict[str, str] | None = None, target: str | None = None,
          tag: str | None = None, progress: Progress = lambda _: None) -> BuildResult:
    context = Path(context)
    dockerfile = Path(dockerfile) if dockerfile else context / "Dockerfile"
    parsed = parse_file(dockerfile)
    plan = make_plan(parsed, load_catalog(), build_args, target)
    ctx = Context(context, str(dockerfile))
    with tempfile.TemporaryDirectory(prefix="boxer-build-") as scratch:
        assembled = assemble(plan, ctx, Path(scratch), progress)
    annotations = {"org.opencontainers.image.ref.name": tag} if tag else None
    data, image_id = imagefile.encode(assembled.spec, assembled.layers, annotations)
    imagefile.write(output, data)
    progress(f"writing image {image_id[:19]} to {output} ({len(data) / 1e6:.1f} MB)")
    return BuildResult(image_id, Path(output), len(data))
