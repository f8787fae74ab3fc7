"""The image file: one valid WebAssembly module that carries a whole image.

Layout: the 8-byte header of an empty Wasm module, then custom sections, which every
Wasm tool must accept and ignore:

    "boxer.manifest"            JSON manifest (OCI names): config and layer descriptors
    "boxer.blob:sha256:<hex>"   one section per blob: the config JSON, each layer tar

The image id is the sha256 of the manifest. Reading checks every blob against its digest
and refuses anything else (truncation, tampering, unknown sections). Writing goes to a
temp file renamed into place, so a failed write never leaves a half image.
"""
from __future__ import annotations

import hashlib
import json
import mmap
import os
from dataclasses import dataclass, field
from pathlib import Path

from boxer_py.errors import ImageError
from boxer_py.image import atomic
from boxer_py.image.config import ImageConfig, ImageSpec
from boxer_py.image.wasmbin import Bytes, read_uleb, uleb

WASM_HEADER = b"\0asm\x01\0\0\0"
MANIFEST_SECTION = "boxer.manifest"
BLOB_PREFIX = "boxer.blob:"
MANIFEST_MEDIA_TYPE = "application/vnd.boxer.image.manifest.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int

    def to_json(self) -> dict:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass
class Image:
    """An image file, opened. The manifest and config are checked on open; each blob is checked
    against its digest the first time it is read, and `verify()` checks them all."""

    id: str
    spec: ImageSpec
    layers: list[Descriptor]
    annotations: dict[str, str]
    manifest: bytes = field(repr=False)
    _data: bytes | mmap.mmap = field(repr=False)
    _sections: dict[str, tuple[int, int]] = field(repr=False)
    where: str = field(repr=False, default="image")
    _checked: set[str] = field(repr=False, default_factory=set)

    def blob(self, digest: str) -> bytes:
        span = self._sections.get(digest)
        if span is None:
            raise ImageError(f"{self.where}: blob {digest[:19]} is missing (truncated or tampered)")
        payload = bytes(self._data[span[0]:span[1]])
        if digest not in self._checked:
            if sha256(payload) != digest:
                raise ImageError(f"{self.where}: blob {digest[:19]} fails its digest check (tampered or corrupt)")
            self._checked.add(digest)
        return payload

    def layer(self, descriptor: Descriptor) -> bytes:
        return self.blob(descriptor.digest)

    def verify(self) -> Image:
        """Check every blob the manifest names (and refuse blobs it does not name)."""
        for digest in self._sections:
            self.blob(digest)
        return self


def _section(name: str, payload: bytes) -> bytes:
    body = uleb(len(name.encode())) + name.encode() + payload
    return b"\0" + uleb(len(body)) + body


def encode(spec: ImageSpec, layers: list[bytes], annotations: dict[str, str] | None = None) -> tuple[bytes, str]:
    """The image file's bytes and the image id."""
    config = spec.to_json()
    descriptors = [Descriptor(LAYER_MEDIA_TYPE, sha256(layer), len(layer)) for layer in layers]
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": Descriptor(CONFIG_MEDIA_TYPE, sha256(config), len(config)).to_json(),
        "layers": [d.to_json() for d in descriptors],
    }
    if annotations:
        manifest["annotations"] = dict(sorted(annotations.items()))
    manifest_raw = json.dumps(manifest, indent=2).encode()
    parts = [WASM_HEADER, _section(MANIFEST_SECTION, manifest_raw)]
    seen = set()
    for blob in [config, *layers]:
        digest = sha256(blob)
        if digest not in seen:
            seen.add(digest)
            parts.append(_section(BLOB_PREFIX + digest, blob))
    return b"".join(parts), sha256(manifest_raw)


def write(path: str | Path, data: bytes) -> None:
    """Atomically write an encoded image (temp file in the same directory, then rename).

    The temp file is created with mode 0666 minus the umask, as any tool's output would be
    (mkstemp's 0600 would survive the rename)."""
    try:
        atomic.write_file(path, data)
    except OSError as e:
        raise ImageError(f"{path}: cannot write the image ({e.strerror or e})") from None


def _read_leb(data: Bytes, pos: int, where: str) -> tuple[int, int]:
    try:
        value, end = read_uleb(data, pos)
    except IndexError:
        end = 0
    if not pos < end <= pos + 5:
        raise ImageError(f"{where}: truncated or corrupt (bad section header)")
    return value, end


def carried(module: bytes, where: str = "module") -> bytes:
    """The image file a WebAssembly module carries in its `boxer.*` custom sections (a
    standalone module pushed as a Wasm artifact appends its image's sections, byte for byte),
    or `module` itself when it is an image file already; `decode` checks the result."""
    if module[:len(WASM_HEADER)] != WASM_HEADER:
        raise ImageError(f"{where}: not a WebAssembly file")
    pos, kept, others = len(WASM_HEADER), [WASM_HEADER], False
    while pos < len(module):
        start, kind = pos, module[pos]
        size, pos = _read_leb(module, pos + 1, where)
        end = pos + size
        if end > len(module):
            raise ImageError(f"{where}: truncated (a section runs past the end of the file)")
        if kind == 0:
            name_len, body = _read_leb(module, pos, where)
            if bytes(module[body:body + min(name_len, 6)]) == b"boxer.":
                kept.append(module[start:end])
        else:
            others = True
        pos = end
    return b"".join(kept) if others and len(kept) > 1 else module


def decode(data: bytes | mmap.mmap, where: str = "image", verify: bool = True) -> Image:
    if data[:len(WASM_HEADER)] != WASM_HEADER:
        raise ImageError(f"{where}: not a WebAssembly file")
    pos = len(WASM_HEADER)
    manifest_raw: bytes | None = None
    sections: dict[str, tuple[int, int]] = {}
    while pos < len(data):
        if data[pos] != 0:
            raise ImageError(f"{where}: not a boxer image (it is a WebAssembly program: "
                             "copy it into an image FROM scratch)")
        size, pos = _read_leb(data, pos + 1, where)
        end = pos + size
        if end > len(data):
            raise ImageError(f"{where}: truncated (a section runs past the end of the file)")
        name_len, body = _read_leb(data, pos, where)
        name = bytes(data[body:body + min(name_len, 200)]).decode("utf-8", "replace")
        if name == MANIFEST_SECTION:
            manifest_raw = bytes(data[body + name_len:end])
        elif name.startswith(BLOB_PREFIX):
            sections[name[len(BLOB_PREFIX):]] = (body + name_len, end)
        else:
            raise ImageError(f"{where}: unexpected section {name[:40]!r} (tampered or not a boxer image)")
        pos = end
    if manifest_raw is None:
        raise ImageError(f"{where}: not a boxer image (no manifest)")
    try:
        manifest = json.loads(manifest_raw)
        config_desc = Descriptor(manifest["config"]["mediaType"], manifest["config"]["digest"],
                                 manifest["config"]["size"])
        layers = [Descriptor(d["mediaType"], d["digest"], d["size"]) for d in manifest["layers"]]
    except (ValueError, KeyError, TypeError):
        raise ImageError(f"{where}: corrupt manifest") from None
    named = {d.digest for d in [config_desc, *layers]}
    if set(sections) != named:
        missing = sorted(named - set(sections))
        what = f"blob {missing[0][:19]} is missing" if missing else "it holds blobs its manifest does not name"
        raise ImageError(f"{where}: {what} (truncated or tampered)")
    for d in [config_desc, *layers]:
        start, end = sections[d.digest]
        if end - start != d.size:
            raise ImageError(f"{where}: blob {d.digest[:19]} has the wrong size (tampered)")
    image = Image("", ImageSpec(ImageConfig()), layers, dict(manifest.get("annotations") or {}), manifest_raw,
                  data, sections, where)
    try:
        spec = ImageSpec.from_json(image.blob(config_desc.digest))
    except (ValueError, AttributeError, TypeError):
        raise ImageError(f"{where}: corrupt config") from None
    if list(spec.diff_ids) != [d.digest for d in layers]:
        raise ImageError(f"{where}: config and manifest disagree on the layers (tampered)")
    image.id, image.spec = sha256(manifest_raw), spec
    return image.verify() if verify else image


def read(path: str | Path, verify: bool = True) -> Image:
    """Open an image file (memory-mapped: blobs are read when used). `verify=False` defers
    the digest check of each layer to its first read; the manifest and config are always checked."""
    try:
        with open(path, "rb") as f:
            data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if os.fstat(f.fileno()).st_size else b""
    except FileNotFoundError:
        raise ImageError(f"{path}: no such image file") from None
    except IsADirectoryError:
        raise ImageError(f"{path}: is a directory, not an image file") from None
    except OSError as e:
        raise ImageError(f"{path}: cannot read ({e.strerror})") from None
    return decode(data, str(path), verify)
