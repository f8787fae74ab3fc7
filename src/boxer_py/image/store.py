"""The local image store, like Docker's local images: `boxer build -t NAME` keeps the image
here, so `FROM NAME`, `COPY --from=NAME`, `boxer run NAME`, `boxer images` and `boxer rmi`
find it. Image files are kept by id (one copy however many tags); tags live in one small
JSON index, rewritten atomically under a lock.
"""
from __future__ import annotations

import builtins
import fcntl
import json
import os
import re
import time
from collections.abc import Iterator, Sequence
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


_ID = re.compile(r"(?:sha256:)?([0-9a-f]{4,64})", re.ASCII)


@dataclass(frozen=True)
class StoredImage:
    """One image of the store as `docker images` lists it: `tag` is "" for an untagged one."""
    tag: str
    id: str
    path: Path
    size: int
    created: float  # when the store first got this image


@dataclass(frozen=True)
class Removed:
    """What a removal did, in `docker rmi`'s words: the tags it took away and the images it deleted."""
    untagged: list[str]
    deleted: list[str]
    freed: int = 0


class Store:
    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.index = self.directory / "tags.json"

    def add(self, data: bytes, image_id: str, tags: Sequence[str] = ()) -> StoredImage:
        """Keep an encoded image (once, by id) and point each of `tags` at it (replacing what a
        tag named before). Without tags it is kept untagged, as `docker build` keeps one."""
        checked = [check_tag(t) for t in tags]
        blob = self._blob(image_id)
        if not blob.is_file():
            write(blob, data)
        if checked:
            with self._locked() as index:
                for tag in checked:
                    index[normalize(tag)] = {"id": image_id, "created": time.time()}
        found = self.find(checked[0]) if checked else self.find(image_id)
        if found is None or found.id != image_id:  # untagged or removed by another process meanwhile
            raise ImageError(f"{checked[0] if checked else image_id}: removed by another process while it was "
                             "being stored")
        return found

    def tag(self, source: str, target: str) -> StoredImage:
        """`boxer tag SOURCE TARGET`: one more name for an image of the store."""
        found = self.find(source)
        if found is None:
            raise ImageError(f"no such image: {source} (see boxer images)")
        tag = check_tag(target)
        with self._locked() as index:
            index[normalize(tag)] = {"id": found.id, "created": time.time()}
        named = self.find(tag)
        if named is None or named.id != found.id:
            raise ImageError(f"{source}: removed by another process while it was being tagged")
        return named

    def find(self, ref: str) -> StoredImage | None:
        """A tag (`app` means `app:latest`), or an image id or a unique prefix of one (at least 4
        hex digits, with or without `sha256:`), as Docker resolves an IMAGE argument."""
        tags = self._read()
        entry = tags.get(normalize(ref)) if _valid_ref(ref) else None
        if isinstance(entry, dict) and isinstance(entry.get("id"), str):
            image_id = entry["id"]
            return self._stored(normalize(ref), image_id)
        match = _ID.fullmatch(ref)
        if match is None:
            return None
        hits = [h for h in self._ids() if h.startswith(match.group(1))]
        if len(hits) != 1:
            return None
        image_id = "sha256:" + hits[0]
        names = self.tags_of(image_id, tags)
        return self._stored(names[0] if len(names) == 1 else "", image_id)

    def tags_of(self, image_id: str, index: dict[str, Any] | None = None) -> builtins.list[str]:
        """Every tag that names `image_id`, sorted."""
        index = self._read() if index is None else index
        return sorted(t for t, e in index.items() if isinstance(e, dict) and e.get("id") == image_id)

    def list(self) -> list[StoredImage]:
        """Every image, one row per tag, and one untagged row for an image without a tag;
        newest first, as `docker images` sorts."""
        index = self._read()
        rows = []
        for hex_id in self._ids():
            image_id = "sha256:" + hex_id
            for tag in self.tags_of(image_id, index) or [""]:
                stored = self._stored(tag, image_id)
                if stored is not None:
                    rows.append(stored)
        return sorted(rows, key=lambda s: (-s.created, s.tag))

    def remove(self, ref: str, force: bool = False) -> Removed:
        """`docker rmi`: a tag is untagged, and its image deleted once no tag names it; an id
        deletes the image, which needs `force` if several tags name it (all are untagged)."""
        found = self.find(ref)
        if found is None:
            raise ImageError(f"no such image: {ref} (see boxer images)")
        by_tag = bool(found.tag) and normalize(ref) == found.tag and _valid_ref(ref)
        with self._locked() as index:
            names = self.tags_of(found.id, index)
            if by_tag:
                untag = [found.tag]
            elif len(names) > 1 and not force:
                raise ImageError(f"unable to delete {found.id[7:19]} (must be forced): the image is tagged "
                                 f"{', '.join(names)}; use rmi -f, or rmi each tag")
            else:
                untag = names
            for tag in untag:
                index.pop(tag, None)
            still_used = bool(self.tags_of(found.id, index))
        if still_used:
            return Removed(untag, [])
        return Removed(untag, [found.id], self._delete(found.id))

    def prune(self, everything: bool = False) -> Removed:
        """`docker image prune`: delete the untagged images (`everything`: all images)."""
        untagged: list[str] = []
        deleted: list[str] = []
        freed = 0
        with self._locked() as index:
            for hex_id in self._ids():
                image_id = "sha256:" + hex_id
                names = self.tags_of(image_id, index)
                if names and not everything:
                    continue
                for tag in names:
                    index.pop(tag, None)
                untagged += names
                deleted.append(image_id)
                freed += self._delete(image_id)
        return Removed(untagged, deleted, freed)

    def locate(self, ref: str | Path) -> Path:
        """An image file path as given, or the file of a local tag or image id."""
        if Path(ref).is_file():
            return Path(ref)
        found = self.find(str(ref)) if not str(ref).endswith(".wasm") else None
        if found is None:
            raise ImageError(f"{ref}: no such image file or local image (build one with boxer build -t NAME)")
        return found.path

    def _stored(self, tag: str, image_id: str) -> StoredImage | None:
        blob = self._blob(image_id)
        try:
            st = blob.stat()
        except OSError:
            return None
        return StoredImage(tag, image_id, blob, st.st_size, st.st_mtime)

    def _delete(self, image_id: str) -> int:
        blob = self._blob(image_id)
        try:
            size = blob.stat().st_size
            blob.unlink()
        except OSError:
            return 0
        return size

    def _ids(self) -> builtins.list[str]:
        try:
            names = os.listdir(self.directory / "blobs")
        except OSError:
            return []
        return sorted(n[:-5] for n in names if n.endswith(".wasm") and re.fullmatch(r"[0-9a-f]{64}\.wasm", n))

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


def _valid_ref(ref: str) -> bool:
    try:
        check_tag(ref)
    except ImageError:
        return False
    return True
