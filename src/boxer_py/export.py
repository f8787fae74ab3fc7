"""Export an image as a plain directory: what any WASI runtime needs to run it."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from .errors import BoxerError
from .imagefile import Image
from .rootfs import unpack


def export_rootfs(image: Image, directory: Path) -> None:
    """DIR/rootfs (the layers applied in order) and DIR/config.json (the OCI image config)."""
    if directory.exists() and any(directory.iterdir()):
        raise BoxerError(f"{directory}: directory is not empty")
    directory.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".rootfs-", dir=directory))
    try:
        unpack(image, tmp)
        tmp.rename(directory / "rootfs")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    (directory / "config.json").write_bytes(image.spec.to_json())
