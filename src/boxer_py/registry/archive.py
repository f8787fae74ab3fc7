"""`boxer save` / `boxer load`: images as the tar archive `docker save` writes (Docker 25+)
and `docker load` reads: an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/`)
plus Docker's `manifest.json`, so `skopeo copy oci-archive:` and `docker-archive:` both read it.
Each image is written as `boxer push` sends it (oci.to_oci_image): its config rewritten for
runtimes outside boxer and, with a WORKDIR, the layer whose program starts there, so a tool that
reads the archive runs it as runwasi would run the pushed image. The OCI manifest marks that
layer and keeps the image's own config, so `load` (as `pull`) gives back the image saved; the
legacy `manifest.json` has no place for either, so what reads only that gets the runnable form.

Layers are plain tar (as Docker writes them), so a layer's digest is its diff_id. Loading
reads an OCI archive (index.json) or a legacy Docker archive (manifest.json only), plain or
gzipped. An archive is hostile: nothing is ever unpacked to disk; members are found by exact
name among at most MAX_MEMBERS regular files, each read only up to the size its descriptor
declares (oci.blob_size) and checked against its digest, what all members declare bounded by
the archive's size (hostfs.Expansion, as every unpack), and the layers go through
oci.to_image_file (check_layer: hostfs.Expansion again) like a pull.
"""
from __future__ import annotations

import io
import json
import tarfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from boxer_py.errors import ImageError
from boxer_py.image import hostfs, imagefile, portable
from boxer_py.image.imagefile import Descriptor, Image, sha256
from boxer_py.registry import oci

MAX_MEMBERS = 10_000  # a save archive holds a few files per layer; more is not one
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'


@dataclass(frozen=True)
class Loaded:
    """One image read from an archive: its image file bytes, id and the tags it carried."""
    data: bytes
    id: str
    tags: tuple[str, ...]


def write_archive(images: Iterable[tuple[Image, list[str]]], out: BinaryIO) -> None:
    """Stream the archive of `images` (each with its tags, `name:tag`) to `out`."""
    blobs: dict[str, bytes] = {}
    index: list[dict] = []
    manifests: list[dict] = []
    for image, tags in images:
        artifact = oci.to_oci_image(image, None, strict=False, programs=portable.default_cache())
        blobs.update(artifact.blobs)
        blobs[artifact.digest] = artifact.manifest
        entry = {"mediaType": oci.MANIFEST, "digest": artifact.digest, "size": len(artifact.manifest)}
        for tag in tags or [""]:
            annotations = {CONTAINERD_NAME: _qualified(tag), REF_NAME: tag.rpartition(":")[2]} if tag else {}
            index.append({**entry, **({"annotations": annotations} if annotations else {})})
        config, *layers = artifact.descriptors
        manifests.append({"Config": _member(config.digest), "RepoTags": list(tags),
                          "Layers": [_member(d.digest) for d in layers]})
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.USTAR_FORMAT) as tar:
        _add(tar, "blobs/", None)
        _add(tar, "blobs/sha256/", None)
        for digest in sorted(blobs):
            _add(tar, _member(digest), blobs[digest])
        _add(tar, "index.json", json.dumps({"schemaVersion": 2, "mediaType": oci.INDEX, "manifests": index}).encode())
        _add(tar, "manifest.json", json.dumps(manifests).encode())
        _add(tar, "oci-layout", _LAYOUT)


def _member(digest: str) -> str:
    return "blobs/sha256/" + digest.removeprefix("sha256:")


def _qualified(tag: str) -> str:
    """Docker's full name of a short one, as `docker save` writes it into index.json."""
    first = tag.split("/", 1)[0]
    if "/" in tag and ("." in first or ":" in first or first == "localhost"):
        return tag
    return ("docker.io/" if "/" in tag else "docker.io/library/") + tag


def _short(name: str) -> str:
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def _add(tar: tarfile.TarFile, name: str, data: bytes | None) -> None:
    info = tarfile.TarInfo(name)
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
    if data is None:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
    else:
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))


class _Members:
    """An archive opened for reading: its regular files by name, read only as declared."""

    def __init__(self, path: Path, where: str):
        self.where = where
        try:
            with open(path, "rb") as f:
                gz = f.read(2) == b"\x1f\x8b"
            self.tar = tarfile.open(path, mode="r:gz" if gz else "r:")
        except FileNotFoundError:
            raise ImageError(f"{where}: no such file") from None
        except (OSError, tarfile.TarError, EOFError) as e:
            raise ImageError(f"{where}: not a tar archive ({e})") from None
        self.files: dict[str, tarfile.TarInfo] = {}
        # what the members declare is bounded by the archive's size as any unpack is (a gzip
        # whose members claim far more than it could hold is refused before they are read)
        expansion = hostfs.Expansion(path.stat().st_size, where, ImageError)
        count = 0
        try:
            while (m := self.tar.next()) is not None:
                count += 1
                if count > MAX_MEMBERS:
                    raise ImageError(f"{where}: more than {MAX_MEMBERS} members: not an image archive")
                expansion.charge(m)
                if m.isreg():
                    self.files[_clean(m.name)] = m
        except (tarfile.TarError, EOFError, OSError) as e:
            raise ImageError(f"{where}: truncated or corrupt tar ({e})") from None

    def close(self) -> None:
        self.tar.close()

    def read(self, name: str, what: str, limit: int, exact: int | None = None) -> bytes:
        m = self.files.get(_clean(name))
        if m is None:
            raise ImageError(f"{self.where}: {what} is missing")
        if m.size > limit or (exact is not None and m.size != exact):
            raise ImageError(f"{self.where}: {what} has {m.size} bytes, "
                             f"{'not the ' + str(exact) if exact is not None else 'more than the ' + str(limit)} "
                             "it may have (tampered or truncated); nothing was loaded")
        try:
            f = self.tar.extractfile(m)
            data = f.read(m.size + 1) if f is not None else b""
        except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
            raise ImageError(f"{self.where}: {what}: cannot read ({type(e).__name__})") from None
        if len(data) != m.size:
            raise ImageError(f"{self.where}: {what} is truncated; nothing was loaded")
        return data

    def blob(self, desc: Descriptor) -> bytes:
        oci.check_digest(desc.digest, self.where)
        data = self.read(_member(desc.digest), f"blob {desc.digest[:19]}", oci.blob_size(desc, self.where), desc.size)
        return oci.verify(desc, data, self.where)

    def has(self, name: str) -> bool:
        return _clean(name) in self.files


def _clean(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name


def read_archive(path: str | Path, where: str | None = None) -> list[Loaded]:
    """Every image of a `docker save` archive (OCI or legacy Docker form), checked."""
    where = where or str(path)
    members = _Members(Path(path), where)
    try:
        return _read(members, where)
    except ImageError:
        raise
    except (TypeError, AttributeError, KeyError, IndexError, ValueError, RecursionError, OverflowError) as e:
        raise ImageError(f"{where}: malformed archive ({type(e).__name__}); nothing was loaded") from None
    finally:
        members.close()


def _read(members: _Members, where: str) -> list[Loaded]:
    repo_tags = _repo_tags(members)
    if members.has("index.json"):
        return _read_oci(members, repo_tags)
    if members.has("manifest.json"):
        return _read_docker(members)
    raise ImageError(f"{where}: neither an OCI archive (index.json) nor a Docker archive (manifest.json)")


def _repo_tags(members: _Members) -> dict[str, list[str]]:
    """manifest.json's RepoTags by config digest (Docker's own record of the tags)."""
    if not members.has("manifest.json"):
        return {}
    doc = _json(members.read("manifest.json", "manifest.json", oci.MAX_MANIFEST), members.where)
    out: dict[str, list[str]] = {}
    for entry in doc if isinstance(doc, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("Config"), str):
            tags = entry.get("RepoTags")
            hex_id = entry["Config"].rsplit("/", 1)[-1].removesuffix(".json")
            out["sha256:" + hex_id] = [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []
    return out


def _read_oci(members: _Members, repo_tags: dict[str, list[str]]) -> list[Loaded]:
    where = members.where
    index = oci.parse_manifest(members.read("index.json", "index.json", oci.MAX_MANIFEST), f"{where}/index.json")
    by_digest: dict[str, tuple[bytes, set[str]]] = {}
    for entry in oci.entries_of(index, "manifests"):
        desc = oci.descriptor(entry, where)
        for _ in range(4):
            if desc.size > oci.MAX_MANIFEST:
                raise ImageError(f"{where}: manifest {desc.digest[:19]} is implausibly large")
            raw = members.blob(desc)
            doc = oci.parse_manifest(raw, where)
            if desc.media_type not in oci.INDEX_TYPES and doc.get("mediaType") not in oci.INDEX_TYPES:
                break
            desc = oci.select_platform(doc, where)
        else:
            raise ImageError(f"{where}: image indexes nested too deeply")
        names = by_digest.setdefault(desc.digest, (raw, set()))[1]
        annotations = entry.get("annotations")
        annotations = annotations if isinstance(annotations, dict) else {}
        name = annotations.get(CONTAINERD_NAME) or annotations.get(REF_NAME)
        if isinstance(name, str) and ":" in name.rsplit("/", 1)[-1]:
            names.add(_short(name))
        config = doc.get("config")
        if isinstance(config, dict) and isinstance(config.get("digest"), str):
            names.update(repo_tags.get(config["digest"], []))
    if not by_digest:
        raise ImageError(f"{where}: the archive holds no image")
    return [_loaded(oci.to_image_file(raw, members.blob, where), names, where) for raw, names in by_digest.values()]


def _read_docker(members: _Members) -> list[Loaded]:
    """The legacy form (`docker save` before 25, skopeo's docker-archive): manifest.json
    names a config file and layer files, which become an OCI manifest of their digests."""
    where = members.where
    doc = _json(members.read("manifest.json", "manifest.json", oci.MAX_MANIFEST), where)
    if not isinstance(doc, list) or not doc:
        raise ImageError(f"{where}: manifest.json is not a list of images")
    out = []
    for entry in doc:
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str) \
                or not isinstance(entry.get("Layers"), list) or not all(isinstance(x, str) for x in entry["Layers"]):
            raise ImageError(f"{where}: manifest.json: an entry lacks Config or Layers")
        config = members.read(entry["Config"], "the image config", oci.MAX_MANIFEST)
        blobs = {sha256(config): config}
        layers = []
        for name in entry["Layers"]:
            data = members.read(name, f"layer {name[:80]!r}", oci.MAX_BLOB)
            media = oci.LAYER_GZIP if data[:2] == b"\x1f\x8b" else oci.LAYER_TAR
            layers.append(Descriptor(media, sha256(data), len(data)).to_json())
            blobs[sha256(data)] = data
        manifest = json.dumps({"schemaVersion": 2, "mediaType": oci.MANIFEST, "layers": layers,
                               "config": Descriptor(oci.IMAGE_CONFIG, sha256(config), len(config)).to_json()}).encode()
        tags = entry.get("RepoTags")
        names = {t for t in tags if isinstance(t, str)} if isinstance(tags, list) else set()
        out.append(_loaded(oci.to_image_file(manifest, _getter(blobs), where), names, where))
    return out


def _getter(blobs: dict[str, bytes]) -> oci.BlobSource:
    return lambda desc: blobs[desc.digest]


def _loaded(data: bytes, names: set[str], where: str) -> Loaded:
    image = imagefile.decode(data, where)
    return Loaded(data, image.id, tuple(sorted(_short(n) for n in names)))


def _json(raw: bytes, where: str) -> object:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise ImageError(f"{where}: manifest.json is not JSON") from None
