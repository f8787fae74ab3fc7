"""OCI image layouts on disk (`oci-layout`, `index.json`, `blobs/sha256/<hex>`): what skopeo,
oras, crane and containerd read and write as `oci:DIR`.

Writing builds the whole layout in a temp directory beside DIR and renames it into place.
Reading trusts nothing: blob names come only from checked digests, and every blob is checked
against its descriptor by the conversion that uses it (oci.to_image_file).
"""
from __future__ import annotations

import json
from pathlib import Path

from boxer_py.errors import ImageError
from boxer_py.image import atomic
from boxer_py.image.imagefile import Descriptor
from boxer_py.registry.oci import (
    INDEX_TYPES,
    MAX_MANIFEST,
    Artifact,
    check_digest,
    descriptor,
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
        if not (directory / "oci-layout").is_file() or not (directory / "index.json").is_file():
            raise ImageError(f"{directory}: not an OCI image layout (no oci-layout or index.json)")

    def blob(self, desc: Descriptor) -> bytes:
        path = self.directory / "blobs" / "sha256" / check_digest(desc.digest, self.where).removeprefix("sha256:")
        try:
            with open(path, "rb") as f:
                data = f.read(desc.size + 1)
        except OSError:
            raise ImageError(f"{self.where}: blob {desc.digest[:19]} is missing") from None
        return data

    def manifest(self, ref_name: str | None = None) -> bytes:
        """The raw image manifest for `ref_name` (or the only one), through nested indexes."""
        try:
            index = parse_manifest((self.directory / "index.json").read_bytes(), f"{self.where}/index.json")
        except OSError as e:
            raise ImageError(f"{self.where}/index.json: cannot read ({e.strerror})") from None
        entries = [e for e in index.get("manifests") or [] if isinstance(e, dict)]
        if ref_name is not None:
            entries = [e for e in entries if (e.get("annotations") or {}).get(REF_NAME) == ref_name]
            if not entries:
                raise ImageError(f"{self.where}: no image named {ref_name!r}")
        if len(entries) != 1:
            names = [str((e.get("annotations") or {}).get(REF_NAME, e.get("digest", "?"))) for e in entries]
            raise ImageError(f"{self.where}: holds {len(entries)} images ({', '.join(names) or 'none'}); "
                             "name one with --ref")
        desc = descriptor(entries[0], self.where)
        for _ in range(4):
            if desc.size > MAX_MANIFEST:
                raise ImageError(f"{self.where}: manifest {desc.digest[:19]} is implausibly large")
            raw = verify(desc, self.blob(desc), self.where)
            doc = parse_manifest(raw, self.where)
            if desc.media_type not in INDEX_TYPES and doc.get("mediaType") not in INDEX_TYPES:
                return raw
            desc = select_platform(doc, self.where)
        raise ImageError(f"{self.where}: image indexes nested too deeply")
