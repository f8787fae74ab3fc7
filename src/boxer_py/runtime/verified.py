"""Which image files a launcher has fully checked before: the digest check of a 100 MB image
is skipped for the very same file (same inode, size, mtime and ctime, which no tool can set
back), so a warm run does not hash the whole image again."""
from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

from boxer_py.image import imagefile
from boxer_py.image.imagefile import Image

KEPT = 16  # images an Opened keeps


class Opened:
    """The image files one launcher has read, each kept with its stamp: a run of the very same
    file again (same inode, size, mtime and ctime) reuses its Image instead of reading it
    again (its manifest and config parsed, their digests checked)."""

    def __init__(self, records: Path):
        self.records = records
        self._images: dict[str, tuple[list[int], Image]] = {}  # by real path, oldest first
        self._lock = threading.Lock()

    def read(self, path: str | Path) -> Image:
        try:
            real, st = os.path.realpath(path), os.stat(path)
        except OSError:
            return imagefile.read(path)
        stamp = _stamp(st)
        with self._lock:
            kept = self._images.get(real)
        if kept is not None and kept[0] == stamp:
            return kept[1]
        image = _read(real, stamp, self.records)
        with self._lock:
            self._images.pop(real, None)
            self._images[real] = stamp, image
            while len(self._images) > KEPT:
                del self._images[next(iter(self._images))]
        return image

    def paths(self) -> list[str]:
        """The files of the images kept, for another process's read() (the run server's preload)."""
        with self._lock:
            return list(self._images)


def _stamp(st: os.stat_result) -> list[int]:
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _read(real: str, stamp: list[int], records: Path) -> Image:
    """Read the image file at `real` (its real path, whose stat gave `stamp`), checking every
    digest unless this very file was fully checked before (its record in `records`)."""
    key = hashlib.sha256(real.encode()).hexdigest()
    record = records / f"{key}.json"
    try:
        known = json.loads(record.read_text())
    except (OSError, ValueError):
        known = None
    trusted = isinstance(known, dict) and known.get("stamp") == stamp
    image = imagefile.read(real, verify=not trusted)
    if trusted and known.get("id") != image.id:
        image.verify()
        trusted = False
    if not trusted:
        record.parent.mkdir(parents=True, exist_ok=True)
        imagefile.write(record, json.dumps({"stamp": stamp, "id": image.id}).encode())
    return image
