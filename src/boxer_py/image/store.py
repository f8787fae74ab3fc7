"""The local image store, like Docker's local images: `boxer build -t NAME` keeps the image
here, so `FROM NAME`, `COPY --from=NAME`, `boxer run NAME`, `boxer images` and `boxer rmi`
find it. Image files are kept by id (one copy however many tags); tags live in one small
JSON index, rewritten atomically under a lock.
"""
from __future__ import annotations

import fcntl
import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from boxer_py import locations
from boxer_py.errors import ImageError
from boxer_py.image.imagefile import write


def default_cache_dir() -> Path:
    """See locations.cache_dir."""
    return Path(locations.cache_dir())


# Docker's reference grammar (distribution/reference): lowercase path components separated by
# `.`, `_`, `__` or dashes, an optional registry host first, a tag of word characters.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])"
_NAME = re.compile(rf"(?:{_HOST}(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*", re.ASCII)
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", re.ASCII)
MAX_NAME = 255


def check_tag(ref: str) -> str:
    """A tag to give an image (`boxer build -t`), validated as Docker does: NAME[:TAG] with a
    lowercase name. Returns it normalised (`app` -> `app:latest`); anything else is an error."""
    last = ref.rsplit("/", 1)[-1]
    name, tag = (ref.rsplit(":", 1) if ":" in last else (ref, "latest"))
    shown = ref if ref.isprintable() and len(ref) <= 300 else repr(ref[:300])
    if "@" in ref:
        raise ImageError(f"invalid tag {shown}: a tag cannot carry a digest (@sha256:...)")
    if not _TAG.fullmatch(tag):
        raise ImageError(f"invalid tag {shown}: the tag after ':' must be letters, digits, '_', '.' or '-' "
                         "(at most 128, not starting with '.' or '-')")
    if len(name) > MAX_NAME or not _NAME.fullmatch(name):
        lower = " (the repository name must be lowercase)" if name.lower() != name and _NAME.fullmatch(
            name.lower()) else ""
        raise ImageError(f"invalid tag {shown}: expected [HOST[:PORT]/]NAME[:TAG] with NAME made of lowercase "
                         f"letters, digits and separators ('.', '_', '__', '-'), path parts separated by '/'{lower}")
    return f"{name}:{tag}"


def normalize(ref: str) -> str:
    """Docker's short names: `app` means `app:latest`."""
    name, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "latest")
    return f"{name.lower()}:{tag}"


@dataclass(frozen=True)
class StoredImage:
    tag: str
    id: str
    path: Path
    size: int
    created: float


class Store:
    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.index = self.directory / "tags.json"

    def add(self, data: bytes, tag: str, image_id: str) -> StoredImage:
        """Keep an encoded image under `tag` (replacing what the tag named before)."""
        tag = check_tag(tag)
        blob = self._blob(image_id)
        if not blob.is_file():
            write(blob, data)
        with self._locked() as tags:
            tags[normalize(tag)] = {"id": image_id, "created": time.time()}
        found = self.find(tag)
        if found is None:  # untagged or removed by another process since the lines above
            raise ImageError(f"{tag}: removed by another process while it was being stored")
        return found

    def find(self, ref: str) -> StoredImage | None:
        entry = self._read().get(normalize(ref))
        if not isinstance(entry, dict):
            return None
        blob = self._blob(entry["id"])
        if not blob.is_file():
            return None
        return StoredImage(normalize(ref), entry["id"], blob, blob.stat().st_size, entry.get("created", 0))

    def list(self) -> list[StoredImage]:
        return [s for s in (self.find(t) for t in sorted(self._read())) if s is not None]

    def remove(self, ref: str) -> StoredImage:
        """Untag; the file goes when no tag names it any more."""
        found = self.find(ref)
        if found is None:
            raise ImageError(f"no such image: {ref} (see boxer images)")
        with self._locked() as tags:
            tags.pop(found.tag, None)
            still_used = any(isinstance(e, dict) and e.get("id") == found.id for e in tags.values())
        if not still_used:
            found.path.unlink(missing_ok=True)
        return found

    def locate(self, ref: str | Path) -> Path:
        """An image file path as given, or the file of a local tag."""
        if Path(ref).is_file():
            return Path(ref)
        found = self.find(str(ref)) if not str(ref).endswith(".wasm") else None
        if found is None:
            raise ImageError(f"{ref}: no such image file or local image (build one with boxer build -t NAME)")
        return found.path

    def _blob(self, image_id: str) -> Path:
        return self.directory / "blobs" / (image_id.split(":", 1)[-1] + ".wasm")

    def _read(self) -> dict[str, Any]:
        try:
            tags = json.loads(self.index.read_text())
        except (OSError, ValueError):
            return {}
        return tags if isinstance(tags, dict) else {}

    @contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            tags = self._read()
            yield tags
            write(self.index, json.dumps(tags, indent=1, sort_keys=True).encode())
