"""Moving images between an image file and the OCI world: layouts on disk, registries.

Each function reads its input, converts with `oci`, and writes its output in one step (an
atomic rename), so a failure anywhere leaves nothing behind.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import imagefile, oci
from .errors import BoxerError
from .layout import Layout, write_layout


@dataclass(frozen=True)
class Transferred:
    """What a push, pull, export or import did, for `--json`."""

    reference: str
    digest: str          # the manifest digest (what a registry or layout names the image by)
    format: str
    image_id: str = ""
    path: str = ""
    size: int = 0

    def to_json(self) -> dict:
        out = {"reference": self.reference, "digest": self.digest, "format": self.format}
        if self.image_id:
            out["id"] = self.image_id
        if self.path:
            out["path"] = self.path
        if self.size:
            out["size"] = self.size
        return out


def artifact_for(image_path: str | Path, fmt: str) -> tuple[oci.Artifact, imagefile.Image]:
    """Read and verify an image file, and convert it to `fmt` ("oci" or "wasm")."""
    if fmt not in oci.FORMATS:
        raise BoxerError(f"unknown format {fmt!r}: use one of {', '.join(oci.FORMATS)}")
    image = imagefile.read(image_path)
    if fmt == "wasm":
        return oci.to_wasm_artifact(Path(image_path).read_bytes()), image
    return oci.to_oci_image(image), image


def export_layout(image_path: str | Path, directory: str | Path, fmt: str = "oci") -> Transferred:
    artifact, image = artifact_for(image_path, fmt)
    write_layout(artifact, Path(directory), _tag(image.annotations.get("org.opencontainers.image.ref.name", "")))
    return Transferred(str(directory), artifact.digest, fmt, image.id, str(directory))


def import_layout(directory: str | Path, output: str | Path, ref_name: str | None = None) -> Transferred:
    layout = Layout(Path(directory))
    manifest = layout.manifest(ref_name)
    data = oci.to_image_file(manifest, layout.blob, str(directory))
    image = imagefile.decode(data, str(directory))
    imagefile.write(output, data)
    return Transferred(str(directory), oci.sha256(manifest), _format(manifest), image.id, str(output), len(data))


def _tag(name: str) -> str:
    """The tag of a `-t NAME[:TAG]` (what a layout names its image by); "" for no name."""
    if not name:
        return ""
    head, sep, tag = name.rpartition(":")
    return tag if sep and "/" not in tag else "latest"


def _format(manifest: bytes) -> str:
    config = oci.parse_manifest(manifest, "manifest").get("config") or {}
    return "wasm" if config.get("mediaType") == oci.WASM_CONFIG else "oci"
