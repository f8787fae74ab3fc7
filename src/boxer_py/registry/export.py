"""Export an image as a plain directory: what any WASI runtime needs to run it."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from boxer_py.errors import BoxerError
from boxer_py.image.imagefile import Image
from boxer_py.image.rootfs import unpack


def export_rootfs(image: Image, directory: Path) -> None:
    """DIR/rootfs (the layers applied in order) and DIR/config.json (the OCI image config)."""
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise BoxerError(f"{directory}: {'directory is not empty' if directory.is_dir() else 'is not a directory'}")
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".rootfs-", dir=directory))
    try:
        unpack(image, tmp)
        tmp.rename(directory / "rootfs")
        (directory / "config.json").write_bytes(image.spec.to_json())
    except BaseException:
        # Leave DIR as it was: gone if this call made it, else empty again.
        if created:
            shutil.rmtree(directory, ignore_errors=True)
        else:
            for entry in directory.iterdir():
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink()
        raise
