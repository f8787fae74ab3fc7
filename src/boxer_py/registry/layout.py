"""OCI image layouts on disk (`oci-layout`, `index.json`, `blobs/sha256/<hex>`): what skopeo,
oras, crane and containerd read and write as `oci:DIR`.

Writing builds the whole layout in a temp directory beside DIR and renames it into place.
Reading trusts nothing: blob names come only from checked digests; every file is opened
relative to the layout directory without following symbolic links (O_NOFOLLOW at each step)
and without blocking (O_NONBLOCK), and must be a regular file of the size its descriptor
declares (at most oci.MAX_BLOB, index.json at most MAX_MANIFEST) before a byte is read; a
blob is read only up to that size and checked against its digest before it is returned
(and again by the conversion that uses it, oci.to_image_file).
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

from boxer_py.errors import ImageError
from boxer_py.image import atomic
from boxer_py.image.imagefile import Descriptor
from boxer_py.registry.oci import (
    INDEX_TYPES,
    MAX_MANIFEST,
    Artifact,
    blob_size,
    check_digest,
    descriptor,
    entries_of,
    parse_manifest,
    select_platform,
    verify,
)

REF_NAME = "org.opencontainers.image.ref.name"
LAYOUT_FILE = '{"imageLayoutVersion": "1.0.0"}'


def write_layout(artifact: Artifact, directory: Path, ref_name: str | None = None) -> None:
    """DIR becomes an OCI image layout holding this one manifest (tagged `ref_name`)."""
    with atomic.fresh_directory(directory) as tmp:
        blobs = tmp / "blobs" / "sha256"
        blobs.mkdir(parents=True)
        for digest, data in [*artifact.blobs.items(), (artifact.digest, artifact.manifest)]:
            (blobs / digest.removeprefix("sha256:")).write_bytes(data)
        entry = {"mediaType": artifact.media_type, "digest": artifact.digest, "size": len(artifact.manifest)}
        if ref_name:
            entry["annotations"] = {REF_NAME: ref_name}
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [entry]}
        (tmp / "index.json").write_text(json.dumps(index, indent=2))
        (tmp / "oci-layout").write_text(LAYOUT_FILE)


class Layout:
    """An OCI image layout opened for reading."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.where = str(directory)
        try:
            info = os.lstat(directory / "oci-layout")
        except OSError:
            info = None
        if info is None or not stat.S_ISREG(info.st_mode):
            raise ImageError(f"{directory}: not an OCI image layout (no oci-layout file)")

    def blob(self, desc: Descriptor) -> bytes:
        """The blob's bytes, read only if it is a regular file of its declared size, and kept
        only once it has matched its digest: a first pass hashes it as it streams (nothing is
        kept), the second reads it (and is checked again, the file may have changed)."""
        name = check_digest(desc.digest, self.where).removeprefix("sha256:")
        size = blob_size(desc, self.where)
        parts, what = ("blobs", "sha256", name), f"blob {desc.digest[:19]}"
        digest = hashlib.sha256()
        self._read(parts, what, size, exact=True, sink=digest.update)
        if "sha256:" + digest.hexdigest() != desc.digest:
            raise ImageError(f"{self.where}: {what} fails its digest check (corrupted or tampered); "
                             "nothing was written")
        return verify(desc, self._read(parts, what, size, exact=True), self.where)

    def _read(self, parts: tuple[str, ...], what: str, limit: int, exact: bool = False,
              sink: Callable[[bytes], object] | None = None) -> bytes:
        """A regular file inside the layout: at most `limit` bytes (exactly that many if
        `exact`), refused before reading if it is anything else or larger. With `sink`, the
        bytes go there as they are read and nothing is kept."""
        fd = self._open(parts, what)
        try:
            size = os.fstat(fd).st_size
            if (size != limit) if exact else (size > limit):
                raise ImageError(f"{self.where}: {what} has {size} bytes, "
                                 f"{'not the' if exact else 'more than the'} {limit} it may have "
                                 "(tampered or truncated); nothing was written")
            chunks, got = [], 0
            while got <= size:  # one more read: a file that grew is refused too
                chunk = os.read(fd, min(size + 1 - got, 1 << 20))
                if not chunk:
                    break
                if sink is None:
                    chunks.append(chunk)
                else:
                    sink(chunk)
                got += len(chunk)
        except OSError as e:
            raise ImageError(f"{self.where}: {what}: cannot read ({e.strerror})") from None
        finally:
            os.close(fd)
        if got != size:
            raise ImageError(f"{self.where}: {what} changed while it was read; nothing was written")
        return b"".join(chunks)

    def _open(self, parts: tuple[str, ...], what: str) -> int:
        """Open layout/parts[0]/.../parts[-1] step by step: no symbolic link is followed
        (out of the layout or within it), no FIFO or device is waited on or read."""
        flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            fd = os.open(self.directory, os.O_RDONLY | os.O_CLOEXEC | os.O_DIRECTORY)
        except OSError as e:
            raise ImageError(f"{self.where}: cannot open the layout ({e.strerror})") from None
        try:
            for i, part in enumerate(parts):
                last = i == len(parts) - 1
                try:
                    child = os.open(part, flags | (os.O_NONBLOCK if last else os.O_DIRECTORY), dir_fd=fd)
                except OSError as e:
                    if e.errno == errno.ENOENT:
                        raise ImageError(f"{self.where}: {what} is missing") from None
                    if e.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise ImageError(f"{self.where}: {what}: {'/'.join(parts[:i + 1])} is a symbolic link "
                                         "or not a directory; refused") from None
                    raise ImageError(f"{self.where}: {what}: cannot open ({e.strerror})") from None
                os.close(fd)
                fd = child
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ImageError(f"{self.where}: {what} is not a regular file (a FIFO, device or "
                                 "directory); refused")
        except BaseException:
            os.close(fd)
            raise
        return fd

    def manifest(self, ref_name: str | None = None) -> bytes:
        """The raw image manifest for `ref_name` (or the only one), through nested indexes."""
        index = parse_manifest(self._read(("index.json",), "index.json", MAX_MANIFEST), f"{self.where}/index.json")
        entries = entries_of(index, "manifests")
        if ref_name is not None:
            entries = [e for e in entries if _ref_name(e) == ref_name]
            if not entries:
                raise ImageError(f"{self.where}: no image named {ref_name!r}")
        if len(entries) != 1:
            names = [str(_ref_name(e) or e.get("digest", "?"))[:80] for e in entries[:20]]
            raise ImageError(f"{self.where}: holds {len(entries)} images ({', '.join(names) or 'none'}); "
                             "name one with --ref")
        desc = descriptor(entries[0], self.where)
        for _ in range(4):
            if desc.size > MAX_MANIFEST:
                raise ImageError(f"{self.where}: manifest {desc.digest[:19]} is implausibly large")
            raw = self.blob(desc)
            doc = parse_manifest(raw, self.where)
            if desc.media_type not in INDEX_TYPES and doc.get("mediaType") not in INDEX_TYPES:
                return raw
            desc = select_platform(doc, self.where)
        raise ImageError(f"{self.where}: image indexes nested too deeply")


def _ref_name(entry: dict) -> object:
    annotations = entry.get("annotations")
    return annotations.get(REF_NAME) if isinstance(annotations, dict) else None
