"""Moving images between an image file and the OCI world: layouts on disk, registries.

Each function reads its input, converts with `oci`, and writes its output in one step (an
atomic rename), so a failure anywhere leaves nothing behind.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from boxer_py.errors import BoxerError, ImageError
from boxer_py.image import atomic, imagefile, portable
from boxer_py.registry import credentials, oci
from boxer_py.registry.distribution import EXISTS, Options, Registry
from boxer_py.registry.layout import Layout, write_layout
from boxer_py.registry.reference import Reference


@dataclass(frozen=True)
class Transferred:
    """What a push, pull, export or import did, for `--json`."""

    reference: str
    digest: str          # the manifest digest (what a registry or layout names the image by)
    format: str
    image_id: str = ""
    path: str = ""
    size: int = 0
    sent: int = 0        # bytes uploaded (blobs the registry already had are not counted)
    received: int = 0    # blob bytes downloaded
    warnings: tuple[str, ...] = ()   # what runtimes outside boxer will not do with the image

    def to_json(self) -> dict:
        out: dict[str, str | int | list[str]] = {"reference": self.reference, "digest": self.digest, "format": self.format}
        if self.image_id:
            out["id"] = self.image_id
        if self.path:
            out["path"] = self.path
        if self.size:
            out["size"] = self.size
        if self.sent:
            out["uploaded"] = self.sent
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out


class LayerCache:
    """Compressed layers by diff_id, so a push of an image whose base did not change does not
    gzip it again (level 6 takes seconds for the Python runtime). An entry records the sha256
    of its gzip stream, and is used only if its bytes have it (a hash of the compressed bytes,
    which the push's descriptor needs anyway, instead of decompressing and hashing the layer
    again); writes are atomic, so a half-written entry is never one."""

    _MAGIC = b"boxer-layer-gz-1\n"
    TOLD = 16 << 20   # a layer this large takes a second or more to gzip: `progress` hears of it
    _HEAD = len(_MAGIC) + 32

    def __init__(self, directory: Path, progress: Callable[[str], None] = lambda _: None):
        self.directory, self.progress = directory, progress

    def __call__(self, tar: bytes) -> bytes:
        name = oci.sha256(tar).removeprefix("sha256:")
        path = self.directory / f"{name}.layer"
        try:
            data = path.read_bytes()
            gz = data[self._HEAD:]
            if data[:len(self._MAGIC)] == self._MAGIC and hashlib.sha256(gz).digest() == data[len(self._MAGIC):self._HEAD]:
                return gz
        except OSError:
            pass
        if len(tar) >= self.TOLD:
            self.progress(f"Compressing a layer of {len(tar) / 1e6:.0f} MB (once: it is cached for the next push)")
        gz = oci.gzip_layer(tar)
        try:
            with atomic.writing(path) as f:
                f.write(self._MAGIC + hashlib.sha256(gz).digest())
                f.write(gz)
            (self.directory / f"{name}.tar.gz").unlink(missing_ok=True)   # what an older boxer kept
        except OSError:
            pass   # a cache that cannot be written only costs time
        return gz


class BlobSources:
    """Where on each registry boxer has pushed or pulled each blob (registry -> digest -> the
    repositories, newest first), so a push to a new repository can mount a blob the registry
    already holds in another one instead of uploading it, as Docker does. A hint, not a truth:
    an entry may be stale (the mount then fails and the blob is uploaded), and a file that cannot
    be read or written only costs uploads. Bounded: MAX_REPOS per blob, MAX_BLOBS per registry."""

    MAX_REPOS, MAX_BLOBS, MAX_FILE = 4, 4096, 8 << 20

    def __init__(self, path: Path):
        self.path = path

    def _load(self) -> dict[str, dict[str, list[str]]]:
        try:
            if self.path.stat().st_size > self.MAX_FILE:
                return {}
            doc = json.loads(self.path.read_bytes())
        except (OSError, ValueError, RecursionError):
            return {}
        if not isinstance(doc, dict):
            return {}
        return {str(host): {str(d): [str(r) for r in repos if isinstance(r, str)][:self.MAX_REPOS]
                            for d, repos in blobs.items() if isinstance(repos, list)}
                for host, blobs in doc.items() if isinstance(blobs, dict)}

    def sources(self, registry: str, repository: str, digest: str) -> list[str]:
        return [r for r in self._load().get(registry, {}).get(digest, []) if r != repository]

    def record(self, registry: str, repository: str, digests: list[str]) -> None:
        doc = self._load()
        blobs = doc.setdefault(registry, {})
        for digest in digests:
            repos = [repository, *(r for r in blobs.pop(digest, []) if r != repository)]
            blobs[digest] = repos[:self.MAX_REPOS]
        doc[registry] = dict(list(blobs.items())[-self.MAX_BLOBS:])
        try:
            atomic.write_file(self.path, json.dumps(doc, separators=(",", ":")).encode())
        except OSError:
            pass


def _sources() -> BlobSources:
    from boxer_py.image.store import default_cache_dir

    return BlobSources(default_cache_dir() / "blob-sources.json")


def artifact_for(image_path: str | Path, fmt: str, cache_dir: Path | None = None,
                 progress: Callable[[str], None] = lambda _: None) -> tuple[oci.Artifact, imagefile.Image]:
    """Read and verify an image file, and convert it to `fmt` ("oci" or "wasm"). The wasm
    format ships the image's standalone module when it can be made (else its warnings say why).
    `progress` hears what takes long (the first time a program is made for other runtimes or a
    large layer is gzipped)."""
    if fmt not in oci.FORMATS:
        raise BoxerError(f"unknown format {fmt!r}: use one of {', '.join(oci.FORMATS)}")
    image = imagefile.read(image_path)
    if fmt == "wasm":
        from boxer_py.registry.standalone import StandaloneError, standalone_module

        try:
            module: bytes | None = standalone_module(image)[0]
            why: tuple[str, ...] = ()
        except StandaloneError as e:
            module, why = None, (f"the artifact holds the image file only, which only boxer runs: {e}",)
        return replace(oci.to_wasm_artifact(Path(image_path).read_bytes(), module), warnings=why), image
    if cache_dir is None:
        from boxer_py.image.store import default_cache_dir

        cache_dir = default_cache_dir()
    return oci.to_oci_image(image, LayerCache(cache_dir / "layers", progress), programs=cache_dir / portable.CACHE_NAME,
                            progress=progress), image


def export_layout(image_path: str | Path, directory: str | Path, fmt: str = "oci", name: str = "") -> Transferred:
    """The layout names its image by the tag of `name` (the local tag exported), else by what an
    older boxer wrote into the image, else `latest`."""
    artifact, image = artifact_for(image_path, fmt)
    write_layout(artifact, Path(directory),
                 _tag(name or image.annotations.get("org.opencontainers.image.ref.name", "")) or "latest")
    return Transferred(str(directory), artifact.digest, fmt, image.id, str(directory), warnings=artifact.warnings)


@contextmanager
def _untrusted(where: str):
    """Around the reading of a layout's or a registry's documents: the readers check the shape
    of what they use, and a shape they did not foresee (a number where a list was, say) is
    still a one-line error, never a traceback."""
    try:
        yield
    except BoxerError:
        raise
    except (TypeError, AttributeError, KeyError, IndexError, ValueError, RecursionError, OverflowError) as e:
        raise ImageError(f"{where}: malformed manifest or config ({type(e).__name__}); nothing was written") from None


def import_layout(directory: str | Path, output: str | Path, ref_name: str | None = None) -> Transferred:
    with _untrusted(str(directory)):
        layout = Layout(Path(directory))
        manifest = layout.manifest(ref_name)
        data = oci.to_image_file(manifest, layout.blob, str(directory))
        image = imagefile.decode(data, str(directory))
        fmt = _format(manifest)
    imagefile.write(output, data)
    return Transferred(str(directory), oci.sha256(manifest), fmt, image.id, str(output), len(data))


def _tag(name: str) -> str:
    """The tag of a `-t NAME[:TAG]` (what a layout names its image by); "" for no name."""
    if not name:
        return ""
    head, sep, tag = name.rpartition(":")
    return tag if sep and "/" not in tag else "latest"


def _format(manifest: bytes) -> str:
    config = oci.parse_manifest(manifest, "manifest").get("config")
    return "wasm" if isinstance(config, dict) and config.get("mediaType") == oci.WASM_CONFIG else "oci"


def _registry(ref: Reference, actions: str, options: Options) -> Registry:
    return Registry(ref, actions, credentials.lookup(ref.registry), options)


def push(image_path: str | Path, reference: str, fmt: str = "oci", options: Options | None = None) -> Transferred:
    """Push an image file to `reference` in `fmt`; blobs the registry has are not sent again."""
    options = options or Options()
    ref = Reference.parse(reference)
    artifact, image = artifact_for(image_path, fmt, progress=options.progress)
    if ref.digest and ref.digest != artifact.digest:
        raise BoxerError(f"{reference}: the image's manifest is {artifact.digest}, not the digest named")
    registry = _registry(ref, "pull,push", options)
    seen = _sources()
    candidates = {d.digest: seen.sources(ref.registry, ref.repository, d.digest) if options.mount else []
                  for d in artifact.descriptors}
    registry.mount_from = tuple(dict.fromkeys(r for repos in candidates.values() for r in repos))[:8]
    options.progress(f"The push refers to repository [{ref.registry}/{ref.repository}]")
    for desc in artifact.descriptors:
        label = desc.digest[7:19]
        if registry.has_blob(desc.digest):
            options.blob(label, EXISTS, desc.size, desc.size)
            continue
        source = next((r for r in candidates[desc.digest] if registry.mount_blob(desc.digest, r)), None)
        if source is not None:
            options.blob(label, f"Mounted from {source}", desc.size, desc.size)
            continue
        registry.upload_blob(desc.digest, artifact.blobs[desc.digest])
    digest = registry.put_manifest(ref.target, artifact.manifest, artifact.media_type)
    seen.record(ref.registry, ref.repository, [d.digest for d in artifact.descriptors])
    options.progress(f"{ref.tag or ref.digest}: digest: {digest} size: {len(artifact.manifest)}")
    return Transferred(str(ref), digest, fmt, image.id, str(image_path), sent=registry.bytes_sent,
                       warnings=artifact.warnings)


@dataclass(frozen=True)
class Fetched:
    """A pulled image, checked, not yet written anywhere."""

    data: bytes
    transferred: Transferred
    local_name: str   # the name `docker pull` would give it locally ("" for a pull by digest)


def fetch(reference: str, options: Options | None = None) -> Fetched:
    """Pull either format from a registry into memory; every byte is checked before it is returned."""
    options = options or Options()
    ref = Reference.parse(reference)
    registry = _registry(ref, "pull", options)
    options.progress(f"{ref.tag or ref.digest}: Pulling from {ref.repository}")
    with _untrusted(str(ref)):
        raw, media_type = registry.get_manifest(ref.target)
        if media_type in oci.INDEX_TYPES or oci.parse_manifest(raw, str(ref)).get("mediaType") in oci.INDEX_TYPES:
            desc = oci.select_platform(oci.parse_manifest(raw, str(ref)), str(ref))
            raw, media_type = registry.get_manifest(desc.digest)
        data = oci.to_image_file(raw, registry.get_blob, str(ref))
        image = imagefile.decode(data, str(ref))
        fmt = _format(raw)
    digest = oci.sha256(raw)
    doc = oci.parse_manifest(raw, str(ref))   # its blobs are in this repository: a later push may mount them
    _sources().record(ref.registry, ref.repository,
                      [oci.descriptor(d, str(ref)).digest for d in [doc["config"], *oci.entries_of(doc, "layers")]])
    options.progress(f"Digest: {digest}")
    name = "" if ref.digest else str(ref).removeprefix("docker.io/library/").removeprefix("docker.io/")
    return Fetched(data, Transferred(str(ref), digest, fmt, image.id, "", len(data), received=registry.bytes_received),
                   name)


def pull(reference: str, output: str | Path, options: Options | None = None) -> Transferred:
    """Pull either format from a registry and write a boxer image file (only if all of it checks)."""
    fetched = fetch(reference, options)
    imagefile.write(output, fetched.data)
    return replace(fetched.transferred, path=str(output))


def login(server: str, username: str, password: str, options: Options | None = None) -> Path:
    """Check the credentials against the registry (GET /v2/), then store them."""
    if not username or not password:
        raise BoxerError("login needs a username and a password")
    ref = Reference.parse(f"{server.split('://', 1)[-1].rstrip('/')}/boxer-login-check")
    credential = credentials.Credential(username, password, "boxer login")
    Registry(ref, "pull", credential, options or Options()).connect()
    return credentials.save(ref.registry, credential)
