"""Conversions between a boxer image file and the two forms it takes in an OCI registry.

- `wasm`: the CNCF Wasm OCI artifact. Config `application/vnd.wasm.config.v0+json`, one
  layer `application/wasm`: the image's standalone module (registry/standalone.py), which any
  WASI runtime runs, followed by the image file's custom sections, byte for byte, so a pull
  gives back the exact image; or the image file alone when the image cannot be standalone.
- `oci`: a standard OCI image for platform wasip1/wasm. Each boxer layer becomes a
  tar+gzip layer (gzip with mtime 0, so the same image always gives the same digests and a
  rebuilt image re-uses its unchanged layers); the config and one more layer are made so that
  runtimes that know nothing of boxer (runwasi's shims, wasmtime on an unpacked rootfs) run it
  as `boxer run` does (`runnable`). The original config travels in a manifest annotation and
  that extra layer is marked, so a pull gives back exactly the image that was pushed.

Everything here is pure: blobs in, blobs out. The registry client and the OCI layout are the
I/O edges. Every blob that comes in is checked against its descriptor before it is used.
"""
from __future__ import annotations

import gzip
import io
import json
import re
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from boxer_py.errors import ImageError
from boxer_py.image import imagefile
from boxer_py.image.config import History, ImageConfig, ImageSpec
from boxer_py.image.hostfs import Expansion
from boxer_py.image.imagefile import Descriptor, Image, sha256
from boxer_py.registry.runnable import PUSH_HISTORY, WORKDIR_LAYER, Runnable, runnable

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
WASM_CONFIG = "application/vnd.wasm.config.v0+json"
WASM_LAYER = "application/wasm"
IMAGE_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
INDEX_TYPES = (INDEX, DOCKER_LIST)

FORMATS = ("oci", "wasm")
ORIGINAL_CONFIG = "dev.boxer.image.config"   # manifest annotation: the boxer config before the rewrite
EPOCH = "1970-01-01T00:00:00Z"                 # fixed `created`: the same image gives the same digests
MAX_MANIFEST = 4 << 20
MAX_LAYER = 4 << 30                            # uncompressed bytes a pulled layer may expand to
MAX_BLOB = MAX_LAYER + (MAX_LAYER >> 6)        # bytes of any one blob read (a layer's gzip, an image file)
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def descriptor(doc: object, where: str) -> Descriptor:
    """A descriptor from manifest JSON, refusing digests that are not plain sha256."""
    try:
        media_type, digest, size = doc["mediaType"], doc["digest"], doc["size"]  # type: ignore[index]
        if not isinstance(media_type, str) or not isinstance(digest, str) or type(size) is not int:
            raise TypeError("not a string, a string and an integer")
        d = Descriptor(media_type, digest, size)
    except (KeyError, TypeError, ValueError):
        raise ImageError(f"{where}: a descriptor lacks mediaType, digest or size") from None
    check_digest(d.digest, where)
    if d.size < 0:
        raise ImageError(f"{where}: a descriptor has a negative size")
    return d


@dataclass(frozen=True)
class Artifact:
    """A manifest and the blobs it names (config first, then layers), ready to publish."""

    manifest: bytes
    blobs: dict[str, bytes]
    descriptors: tuple[Descriptor, ...]
    warnings: tuple[str, ...] = ()   # what runtimes outside boxer will not do as `boxer run` does

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    @property
    def media_type(self) -> str:
        return MANIFEST


BlobSource = Callable[[Descriptor], bytes]


def check_digest(digest: str, where: str) -> str:
    """Only `sha256:<64 hex>`: it names files in a layout, so nothing else may pass."""
    if not _DIGEST.fullmatch(digest):
        raise ImageError(f"{where}: unsupported or malformed digest {digest[:80]!r} (only sha256 is supported)")
    return digest


def blob_size(desc: Descriptor, where: str, limit: int = MAX_BLOB) -> int:
    """The descriptor's size, if it is one a reader may read (the registry client and the
    layout reader ask before reading anything: a declared 2**50 is refused, not allocated)."""
    if desc.size > limit:
        raise ImageError(f"{where}: blob {desc.digest[:19]} declares {desc.size} bytes, more than the "
                         f"{limit >> 20} MiB a blob may have; nothing was read")
    return desc.size


def verify(desc: Descriptor, data: bytes, where: str) -> bytes:
    """The blob, if it is the one its descriptor names; otherwise a one-line error."""
    if len(data) != desc.size or sha256(data) != desc.digest:
        raise ImageError(f"{where}: blob {desc.digest[:19]} fails its digest check "
                         "(corrupted or tampered in transit); nothing was written")
    return data


def _artifact(config: Descriptor, layers: list[Descriptor], blobs: dict[str, bytes],
              annotations: dict[str, str], layer_annotations: dict[str, dict[str, str]] | None = None) -> Artifact:
    marked = layer_annotations or {}
    manifest: dict = {"schemaVersion": 2, "mediaType": MANIFEST, "config": config.to_json(),
                      "layers": [{**d.to_json(), **({"annotations": marked[d.digest]} if d.digest in marked else {})}
                                 for d in layers]}
    if annotations:
        manifest["annotations"] = dict(sorted(annotations.items()))
    raw = json.dumps(manifest, indent=2).encode()
    return Artifact(raw, blobs, (config, *layers))


def to_wasm_artifact(data: bytes, module: bytes | None = None) -> Artifact:
    """The CNCF Wasm artifact: one `application/wasm` layer, the standalone `module` carrying
    the image file's sections (the image file alone without one)."""
    image = imagefile.decode(data, "image")
    if module is not None:
        data = module + data[len(imagefile.WASM_HEADER):]
    layer = Descriptor(WASM_LAYER, sha256(data), len(data))
    config = json.dumps({"created": EPOCH, "architecture": "wasm", "os": "wasip1",
                         "layerDigests": [layer.digest]}, indent=2).encode()
    config_desc = Descriptor(WASM_CONFIG, sha256(config), len(config))
    return _artifact(config_desc, [layer], {config_desc.digest: config, layer.digest: data}, image.annotations)


def gzip_layer(tar: bytes) -> bytes:
    """Deterministic gzip (no name, mtime 0): equal layers give equal digests on every push."""
    return gzip.compress(tar, compresslevel=6, mtime=0)


def to_oci_image(image: Image, compress: Callable[[bytes], bytes] | None = gzip_layer,
                 strict: bool = True, programs: Path | None = None,
                 progress: Callable[[str], None] = lambda _: None) -> Artifact:
    """A standard OCI image that runtimes outside boxer run as `boxer run` does (`runnable`).
    `compress` must return what `gzip_layer` does (a cache of its results, say); None keeps
    the layers plain tar (what `docker save` writes). A command that cannot run outside boxer
    (one needing a shell) is refused; unless not `strict` (`boxer save`, which docker save
    never refuses): then the image goes out as it is, with nothing rewritten or added.
    `programs` and `progress`: `runnable`'s cache and progress."""
    tars = [image.layer(d) for d in image.layers]
    config = image.spec.config
    try:
        run = runnable(config, tars, programs, progress)
    except ImageError:
        if strict:
            raise
        run = Runnable(config)
    diff_ids, history = image.spec.diff_ids, image.spec.history
    if run.layer is not None:
        tars.append(run.layer)
        diff_ids, history = (*diff_ids, sha256(run.layer)), (*history, History(run.created_by))
    config_raw = ImageSpec(run.config, diff_ids, history, image.spec.author).to_json()
    blobs = {sha256(config_raw): config_raw}
    layers = []
    for tar in tars:
        gz = compress(tar) if compress is not None else tar
        layers.append(Descriptor(LAYER_GZIP if compress is not None else LAYER_TAR, sha256(gz), len(gz)))
        blobs[layers[-1].digest] = gz
    annotations = dict(image.annotations)
    if run.config != config or run.layer is not None:
        annotations[ORIGINAL_CONFIG] = json.dumps(config.to_oci(), sort_keys=True, separators=(",", ":"))
    marked = {layers[-1].digest: {WORKDIR_LAYER: "workdir"}} if run.layer is not None else {}
    artifact = _artifact(Descriptor(IMAGE_CONFIG, sha256(config_raw), len(config_raw)), layers, blobs,
                         annotations, marked)
    return replace(artifact, warnings=run.warnings)


def parse_manifest(raw: bytes, where: str) -> dict:
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nested past any real manifest
        raise ImageError(f"{where}: the manifest is not JSON") from None
    if not isinstance(doc, dict) or doc.get("schemaVersion") != 2:
        raise ImageError(f"{where}: not an OCI or Docker v2 manifest")
    return doc


def select_platform(index: dict, where: str) -> Descriptor:
    """From an image index, the manifest for wasip1/wasm (or the only one there is)."""
    entries = entries_of(index, "manifests")
    for e in entries:
        platform = e.get("platform")
        if isinstance(platform, dict) and platform.get("architecture") == "wasm" and platform.get("os") in ("wasip1", "wasi"):
            return descriptor(e, where)
    if len(entries) == 1:
        return descriptor(entries[0], where)
    raise ImageError(f"{where}: the index has no wasip1/wasm image "
                     f"({', '.join(_platform(e) for e in entries) or 'it is empty'})")


def entries_of(doc: dict, key: str) -> list[dict]:
    """The objects in a JSON list (an index's manifests): nothing if it is not a list."""
    value = doc.get(key)
    return [e for e in value if isinstance(e, dict)] if isinstance(value, list) else []


def _platform(entry: dict) -> str:
    p = entry.get("platform")
    p = p if isinstance(p, dict) else {}
    return f"{str(p.get('os', '?'))[:40]}/{str(p.get('architecture', '?'))[:40]}"


def to_image_file(manifest_raw: bytes, fetch: BlobSource, where: str) -> bytes:
    """The boxer image file for a manifest in either format; `fetch` returns a blob's bytes,
    each of which is checked here against its descriptor before it is used."""
    doc = parse_manifest(manifest_raw, where)
    if doc.get("mediaType") in INDEX_TYPES or "manifests" in doc:
        raise ImageError(f"{where}: is an image index; pick one manifest first")
    if not isinstance(doc.get("config"), dict) or not isinstance(doc.get("layers"), list):
        raise ImageError(f"{where}: the manifest lacks a config or layers")
    config = descriptor(doc["config"], where)
    layers = [descriptor(d, where) for d in doc["layers"]]
    if not isinstance(doc.get("annotations") or {}, dict):
        raise ImageError(f"{where}: the manifest's annotations are not an object")
    annotations = {str(k): str(v) for k, v in (doc.get("annotations") or {}).items()}
    if config.media_type == WASM_CONFIG:
        return _from_wasm_artifact(layers, fetch, where)
    if config.media_type not in (IMAGE_CONFIG, DOCKER_CONFIG):
        raise ImageError(f"{where}: unknown config type {config.media_type!r}: neither a Wasm artifact nor an OCI image")
    if config.size > MAX_MANIFEST:
        raise ImageError(f"{where}: the image config is implausibly large ({config.size} bytes)")
    config_raw = verify(config, fetch(config), where)
    try:
        doc_config = json.loads(config_raw)
        if not isinstance(doc_config, dict):
            raise ValueError("not an object")
        spec = ImageSpec.from_json(config_raw)
    except (ValueError, AttributeError, TypeError, RecursionError):
        raise ImageError(f"{where}: the image config is not valid JSON") from None
    os_, arch = doc_config.get("os"), doc_config.get("architecture")
    if arch != "wasm" or os_ not in ("wasip1", "wasi"):
        raise ImageError(f"{where}: is a {os_}/{arch} image; boxer runs only WebAssembly (wasip1/wasm) images")
    if len(spec.diff_ids) != len(layers):
        raise ImageError(f"{where}: the config lists {len(spec.diff_ids)} layers, the manifest {len(layers)}")
    original = annotations.pop(ORIGINAL_CONFIG, None)
    history = spec.history
    if original is not None and layers and (_marked(doc["layers"][-1]) or _push_made(history)):
        layers, spec = layers[:-1], replace(spec, diff_ids=spec.diff_ids[:-1])   # push's workdir layer
        history = history[:-1]
    tars = []
    for desc, diff_id in zip(layers, spec.diff_ids, strict=True):
        tar = _uncompress(desc, verify(desc, fetch(desc), where), where)
        if sha256(tar) != diff_id:
            raise ImageError(f"{where}: layer {desc.digest[:19]} does not match its diff_id (tampered)")
        check_layer(tar, f"{where}: layer {desc.digest[:19]}")
        tars.append(tar)
    if original is not None:
        try:
            spec = ImageSpec(ImageConfig.from_oci(json.loads(original)), spec.diff_ids, history, spec.author)
        except (ValueError, AttributeError, TypeError):
            raise ImageError(f"{where}: corrupt {ORIGINAL_CONFIG} annotation") from None
    data, _ = imagefile.encode(spec, tars, annotations or None)
    return data


def _push_made(history: tuple[History, ...]) -> bool:
    """Whether the last layer's history entry is the one push writes for its workdir layer: a
    copy that rewrote the manifest (skopeo copying a `boxer save` archive) drops layer
    annotations, and boxer's own config annotation and that entry still say what it is."""
    return bool(history) and not history[-1].empty_layer and history[-1].created_by.startswith(PUSH_HISTORY)


def _marked(layer: dict) -> bool:
    """Whether a manifest's layer entry is the one push added for runtimes outside boxer."""
    notes = layer.get("annotations")
    return isinstance(notes, dict) and notes.get(WORKDIR_LAYER) == "workdir"


def _from_wasm_artifact(layers: list[Descriptor], fetch: BlobSource, where: str) -> bytes:
    wasm = [d for d in layers if d.media_type == WASM_LAYER]
    if len(wasm) != 1:
        raise ImageError(f"{where}: a Wasm artifact needs exactly one {WASM_LAYER} layer, it has {len(wasm)}")
    data = imagefile.carried(verify(wasm[0], fetch(wasm[0]), where), where)
    imagefile.decode(data, where)   # a plain module, or a damaged image, stops here
    return data


def _uncompress(desc: Descriptor, blob: bytes, where: str) -> bytes:
    if desc.media_type == LAYER_TAR:
        return blob
    if desc.media_type not in (LAYER_GZIP, DOCKER_LAYER_GZIP):
        raise ImageError(f"{where}: layer type {desc.media_type!r} is not supported (use tar or tar+gzip)")
    d = zlib.decompressobj(wbits=31)
    try:
        out = d.decompress(blob, MAX_LAYER + 1)
    except zlib.error:
        raise ImageError(f"{where}: layer {desc.digest[:19]} is not valid gzip") from None
    if len(out) > MAX_LAYER or d.unconsumed_tail:
        raise ImageError(f"{where}: layer {desc.digest[:19]} expands past {MAX_LAYER >> 20} MiB (a gzip bomb?)")
    if not d.eof:
        raise ImageError(f"{where}: layer {desc.digest[:19]} is truncated gzip")
    return out


def check_layer(tar: bytes, where: str) -> None:
    """Refuse, before anything is written, a layer that could not be unpacked safely or
    faithfully: `..` in names or hard links, devices and fifos (unpacking checks these again).
    OCI whiteouts are kept: unpacking applies them as deletions."""
    try:
        expansion = Expansion(len(tar), where, ImageError)  # sparse members, hard-link bombs
        with tarfile.open(fileobj=io.BytesIO(tar), mode="r:") as t:
            for m in t:
                expansion.charge(m)
                if ".." in m.name.split("/") or (m.islnk() and ".." in m.linkname.split("/")):
                    raise ImageError(f"{where}: member {m.name[:80]!r} points outside the root ('..')")
                if not (m.isdir() or m.isfile() or m.issym() or m.islnk()):
                    raise ImageError(f"{where}: member {m.name[:80]!r} is a device or fifo")
    except tarfile.TarError as e:
        raise ImageError(f"{where}: not a valid tar ({e})") from None
