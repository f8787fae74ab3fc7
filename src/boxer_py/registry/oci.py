"""Conversions between a boxer image file and the two forms it takes in an OCI registry.

- `wasm`: the CNCF Wasm OCI artifact. Config `application/vnd.wasm.config.v0+json`, one
  layer `application/wasm`: the image's standalone module (registry/standalone.py), which any
  WASI runtime runs, followed by the image file's custom sections, byte for byte, so a pull
  gives back the exact image; or the image file alone when the image cannot be standalone.
- `oci`: a standard OCI image for platform wasip1/wasm. Each boxer layer becomes a
  tar+gzip layer (gzip with mtime 0, so the same image always gives the same digests and a
  rebuilt image re-uses its unchanged layers); the config's Entrypoint is the absolute path of
  the .wasm program in the rootfs, so runtimes that know nothing of boxer (runwasi's shims,
  wasmtime on an unpacked rootfs) can start it. The original Entrypoint/Cmd travel in a
  manifest annotation, so a pull gives back exactly the image that was pushed.

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

from boxer_py.errors import ImageError
from boxer_py.image import imagefile, paths
from boxer_py.image.config import DEFAULT_PATH, ImageConfig, ImageSpec
from boxer_py.image.hostfs import Expansion
from boxer_py.image.imagefile import Descriptor, Image, sha256
from boxer_py.image.paths import guest_parts

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
_WASM_MAGIC = b"\0asm"


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
              annotations: dict[str, str]) -> Artifact:
    manifest: dict = {"schemaVersion": 2, "mediaType": MANIFEST, "config": config.to_json(),
                      "layers": [d.to_json() for d in layers]}
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


def to_oci_image(image: Image, compress: Callable[[bytes], bytes] | None = gzip_layer) -> Artifact:
    """A standard OCI image whose Entrypoint is the .wasm program's path inside the rootfs.
    `compress` must return what `gzip_layer` does (a cache of its results, say); None keeps
    the layers plain tar (what `docker save` writes)."""
    tars = [image.layer(d) for d in image.layers]
    config = image.spec.config
    runnable = runtime_config(config, tars)
    spec = ImageSpec(runnable, image.spec.diff_ids, image.spec.history)
    config_raw = spec.to_json()
    blobs = {sha256(config_raw): config_raw}
    layers = []
    for tar in tars:
        gz = compress(tar) if compress is not None else tar
        layers.append(Descriptor(LAYER_GZIP if compress is not None else LAYER_TAR, sha256(gz), len(gz)))
        blobs[layers[-1].digest] = gz
    annotations = dict(image.annotations)
    if runnable != config:
        annotations[ORIGINAL_CONFIG] = json.dumps(config.to_oci(), sort_keys=True, separators=(",", ":"))
    return _artifact(Descriptor(IMAGE_CONFIG, sha256(config_raw), len(config_raw)), layers, blobs, annotations)


def runtime_config(config: ImageConfig, tars: list[bytes]) -> ImageConfig:
    """The config with argv[0] replaced by the absolute path of the .wasm file it names (found on
    PATH or from WORKDIR, symlinks followed inside the rootfs). Runtimes outside boxer need a
    program path; left unchanged when there is no such file (a shell-form command, say)."""
    argv = list(config.entrypoint) or list(config.cmd)
    if not argv:
        return config
    tree = _Tree(tars)
    path_env = config.env_dict().get("PATH", DEFAULT_PATH)
    program = tree.find_program(argv[0], path_env, config.working_dir)
    if program is None:
        return config
    if config.entrypoint:
        return replace(config, entrypoint=(program, *config.entrypoint[1:]))
    return replace(config, entrypoint=(program,), cmd=tuple(config.cmd[1:]))


class _Tree:
    """The merged view of layer tars (later layers win), enough to resolve one path."""

    def __init__(self, tars: list[bytes]):
        self.tars = tars
        self.entries: dict[str, tuple[int, tarfile.TarInfo]] = {}
        for i, tar in enumerate(tars):
            with tarfile.open(fileobj=io.BytesIO(tar)) as t:
                for m in t.getmembers():
                    name = "/".join(p for p in guest_parts(m.name) if p != "..")
                    if name:
                        self.entries[name] = (i, m)

    def resolve(self, guest: str) -> str | None:
        def readlink(rel: str) -> str | None:
            hit = self.entries.get(rel)
            return hit[1].linkname if hit and hit[1].issym() else None

        try:
            return "/".join(paths.resolve(guest, readlink))
        except paths.TooManyLinks:
            return None

    def is_wasm(self, name: str) -> bool:
        hit = self.entries.get(name)
        if not hit or not hit[1].isfile():
            return False
        with tarfile.open(fileobj=io.BytesIO(self.tars[hit[0]])) as t:
            f = t.extractfile(hit[1])
            return f is not None and f.read(4) == _WASM_MAGIC

    def find_program(self, name: str, path_env: str, workdir: str) -> str | None:
        for guest in paths.program_candidates(name, path_env, workdir):
            real = self.resolve(guest)
            if real and self.is_wasm(real):
                return "/" + real
        return None


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
    tars = []
    for desc, diff_id in zip(layers, spec.diff_ids, strict=True):
        tar = _uncompress(desc, verify(desc, fetch(desc), where), where)
        if sha256(tar) != diff_id:
            raise ImageError(f"{where}: layer {desc.digest[:19]} does not match its diff_id (tampered)")
        check_layer(tar, f"{where}: layer {desc.digest[:19]}")
        tars.append(tar)
    original = annotations.pop(ORIGINAL_CONFIG, None)
    if original is not None:
        try:
            spec = ImageSpec(ImageConfig.from_oci(json.loads(original)), spec.diff_ids, spec.history)
        except (ValueError, AttributeError, TypeError):
            raise ImageError(f"{where}: corrupt {ORIGINAL_CONFIG} annotation") from None
    data, _ = imagefile.encode(spec, tars, annotations or None)
    return data


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
