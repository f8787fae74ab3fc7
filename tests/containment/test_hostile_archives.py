"""What `boxer load` reads is hostile: an archive someone handed over. Nothing of it is ever
unpacked to disk; members are found by exact name among regular files only, each read only up
to the size its descriptor declares and checked against its digest, layers go through the
same checks as a pull. Each attack ends in one line, exit 1, promptly, with bounded memory and
nothing in the local store."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from boxer_py.image import imagefile
from boxer_py.image.config import ImageConfig, ImageSpec
from boxer_py.registry.archive import MAX_MEMBERS, write_archive

RSS_LIMIT_KIB = 300 * 1024


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return out.getvalue()


def image(files: dict[str, bytes] | None = None) -> imagefile.Image:
    tar = layer(files or {"hello.txt": b"hello\n"})
    data, _ = imagefile.encode(ImageSpec(ImageConfig(cmd=("/app.wasm",)), (sha256(tar),), ("COPY . /",)), [tar])
    return imagefile.decode(data)


def members(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as t:
        return {m.name: t.extractfile(m).read() for m in t if m.isreg()}  # type: ignore[union-attr]


def tar_of(entries: list[tuple[str, bytes | None, dict]]) -> bytes:
    """A tar of (name, data, TarInfo attributes): data None for a link or directory."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data, attrs in entries:
            info = tarfile.TarInfo(name)
            for k, v in attrs.items():
                setattr(info, k, v)
            if data is not None:
                info.size = len(data)
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def saved(img: imagefile.Image | None = None, tags: list[str] | None = None) -> dict[str, bytes]:
    out = io.BytesIO()
    write_archive([(img or image(), tags if tags is not None else ["evil:1"])], out)
    return members(out.getvalue())


def rewrite(files: dict[str, bytes], extra: list[tuple[str, bytes | None, dict]] | None = None) -> bytes:
    return tar_of([(n, d, {}) for n, d in files.items()] + (extra or []))


@pytest.fixture
def load(tmp_path):
    cache = tmp_path / "cache"

    def run(archive: bytes, *needles: str) -> None:
        path = tmp_path / "in.tar"
        path.write_bytes(archive)
        wrapper = ("import json, resource, subprocess, sys\n"
                   "p = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)\n"
                   "json.dump({'rc': p.returncode, 'out': p.stdout.decode(), 'err': p.stderr.decode(errors='replace'),"
                   " 'rss': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}, sys.stdout)\n")
        env = {**os.environ, "BOXER_CACHE_DIR": str(cache)}
        proc = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "-m", "boxer_py", "load", "-i", str(path)],
                              capture_output=True, text=True, env=env, timeout=180)
        r = json.loads(proc.stdout)
        assert r["rc"] == 1 and r["out"] == "", r
        assert r["err"].startswith("boxer: ") and r["err"].count("\n") == 1 and "Traceback" not in r["err"], r["err"]
        for n in needles:
            assert n in r["err"], r["err"]
        assert r["rss"] < RSS_LIMIT_KIB, r["rss"]
        blobs = cache / "images" / "blobs"
        assert not blobs.exists() or list(blobs.iterdir()) == [], "nothing reached the store"

    return run


def _manifest_digest(files: dict[str, bytes]) -> str:
    return json.loads(files["index.json"])["manifests"][0]["digest"]


def test_a_blob_that_is_a_symlink_out_of_the_archive_is_never_followed(load):
    files = saved()
    digest = _manifest_digest(files)
    name = "blobs/sha256/" + digest[7:]
    del files[name]
    load(rewrite(files, [(name, None, {"type": tarfile.SYMTYPE, "linkname": "/etc/passwd"})]), "is missing")


def test_a_hard_link_member_is_not_a_blob(load):
    files = saved()
    name = "blobs/sha256/" + _manifest_digest(files)[7:]
    del files[name]
    load(rewrite(files, [(name, None, {"type": tarfile.LNKTYPE, "linkname": "index.json"})]), "is missing")


def test_paths_that_climb_out_in_manifest_json_are_only_names(load):
    files = saved()
    del files["index.json"]
    doc = json.loads(files["manifest.json"])
    doc[0]["Layers"] = ["../../../../etc/passwd"]
    files["manifest.json"] = json.dumps(doc).encode()
    load(rewrite(files), "is missing")


def test_a_blob_whose_size_disagrees_with_its_descriptor(load):
    files = saved()
    name = "blobs/sha256/" + _manifest_digest(files)[7:]
    files[name] += b" "
    load(rewrite(files), "has", "bytes")


def test_a_declared_petabyte_is_refused_before_reading(load):
    files = saved()
    index = json.loads(files["index.json"])
    index["manifests"][0]["size"] = 1 << 50
    files["index.json"] = json.dumps(index).encode()
    load(rewrite(files), "implausibly large")


def test_a_tampered_layer_fails_its_digest(load):
    files = saved()
    biggest = max((n for n in files if n.startswith("blobs/")), key=lambda n: len(files[n]))
    data = bytearray(files[biggest])
    data[len(data) // 2] ^= 0xFF
    files[biggest] = bytes(data)
    load(rewrite(files), "digest check")


def test_too_many_members(load):
    entries = [(f"m{i}", b"", {}) for i in range(MAX_MEMBERS + 1)]
    load(tar_of(entries), f"more than {MAX_MEMBERS} members")


def test_a_layer_that_escapes_its_root(load):
    load(rewrite(saved(image({"../../escape.txt": b"x"}))), "outside the root")


def test_a_gzip_bomb_of_zeros_is_an_empty_archive(load):
    load(gzip.compress(b"\0" * (512 << 20), compresslevel=9), "neither an OCI archive")


def test_a_gzip_whose_members_claim_far_more_than_it_holds(load):
    """100 MiB of zeros in one member gzip to a few hundred KiB: more than any unpack of an
    archive that size may write (hostfs.Expansion), refused before the member is read."""
    load(gzip.compress(tar_of([("blobs/sha256/" + "0" * 64, b"\0" * (100 << 20), {})]), compresslevel=9),
         "expands past")


def test_a_native_image_is_refused(load):
    files = saved()
    doc = json.loads(files["manifest.json"])
    config = json.loads(files[doc[0]["Config"]])
    config["os"], config["architecture"] = "linux", "amd64"
    raw = json.dumps(config).encode()
    del files["index.json"]
    files["blobs/sha256/" + sha256(raw)[7:]] = raw
    doc[0]["Config"] = "blobs/sha256/" + sha256(raw)[7:]
    files["manifest.json"] = json.dumps(doc).encode()
    load(rewrite(files), "linux/amd64 image", "only WebAssembly")


def test_not_json_where_json_must_be(load):
    files = saved()
    files["index.json"] = b"{" * 100_000
    load(rewrite(files), "not JSON")


def test_a_fifo_or_device_member_is_not_a_blob(load):
    files = saved()
    name = "blobs/sha256/" + _manifest_digest(files)[7:]
    del files[name]
    load(rewrite(files, [(name, None, {"type": tarfile.FIFOTYPE})]), "is missing")


def test_the_valid_archive_these_start_from_loads(tmp_path):
    """The baseline: unchanged, the same archive loads (so each refusal above is the attack's)."""
    path = tmp_path / "ok.tar"
    path.write_bytes(rewrite(saved()))
    r = subprocess.run([sys.executable, "-m", "boxer_py", "load", "-i", str(path)], capture_output=True, text=True,
                       env={**os.environ, "BOXER_CACHE_DIR": str(tmp_path / "cache")}, timeout=120)
    assert r.returncode == 0 and r.stdout == "Loaded image: evil:1\n", r.stderr
    assert Path(tmp_path / "cache" / "images" / "tags.json").read_text().count("evil:1") == 1
