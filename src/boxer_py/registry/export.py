"""Export an image as a plain directory: what any WASI runtime needs to run it."""
from __future__ import annotations

from pathlib import Path

from boxer_py.image import atomic
from boxer_py.image.imagefile import Image
from boxer_py.image.rootfs import unpack


def export_rootfs(image: Image, directory: Path) -> None:
    """DIR/rootfs (the layers applied in order) and DIR/config.json (the OCI image config)."""
    with atomic.fresh_directory(directory) as tmp:   # DIR stays as it was if this fails
        (tmp / "rootfs").mkdir()
        unpack(image, tmp / "rootfs")
        (tmp / "config.json").write_bytes(image.spec.to_json())
