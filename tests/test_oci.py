"""OCI conversions and image layouts: both formats round-trip, skopeo reads what boxer writes,
and hostile layouts are refused without writing anything."""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import wasmtime

import runwasi
from boxer_py.image import imagefile
from boxer_py.image.imagefile import Descriptor, sha256
from boxer_py.registry import oci
from boxer_py.registry.layout import write_layout

SKOPEO = shutil.which("skopeo") or "/usr/bin/skopeo"


def blobs_of(layout: Path) -> dict[str, bytes]:
    return {"sha256:" + p.name: p.read_bytes() for p in (layout / "blobs" / "sha256").iterdir()}


def only_manifest(layout: Path) -> dict:
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"]
    return json.loads(blobs_of(layout)[digest])


def make_tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def write_oci_image(directory: Path, tars: list[bytes], os_: str = "wasip1", arch: str = "wasm",
                    cmd: list[str] | None = None) -> None:
    """A standard OCI image layout made by hand, the way another tool would."""
    config = json.dumps({"architecture": arch, "os": os_, "config": {"Cmd": cmd or ["/app.wasm"]},
                         "rootfs": {"type": "layers", "diff_ids": [sha256(t) for t in tars]}}).encode()
    gz = [oci.gzip_layer(t) for t in tars]
    layers = [Descriptor(oci.LAYER_GZIP, sha256(g), len(g)) for g in gz]
    cdesc = Descriptor(oci.IMAGE_CONFIG, sha256(config), len(config))
    manifest = json.dumps({"schemaVersion": 2, "mediaType": oci.MANIFEST, "config": cdesc.to_json(),
                           "layers": [d.to_json() for d in layers]}).encode()
    blobs = {cdesc.digest: config, **{d.digest: g for d, g in zip(layers, gz, strict=True)}}
    write_layout(oci.Artifact(manifest, blobs, (cdesc, *layers)), directory, "latest")


EXIT7 = wasmtime.wat2wasm("""
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $exit (i32.const 7))))
""")


@pytest.mark.parametrize("fmt", ["oci", "wasm"])
def test_export_import_round_trip_is_byte_identical(boxer, hello_image, tmp_path, fmt):
    r = boxer("export", str(hello_image), "--format", fmt, str(tmp_path / "layout"))
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "layout" / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    r = boxer("import", str(tmp_path / "layout"), "-o", str(tmp_path / "back.wasm"), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["format"] == fmt and out["id"] == imagefile.read(hello_image).id
    assert (tmp_path / "back.wasm").read_bytes() == hello_image.read_bytes()


def test_wasm_artifact_follows_the_cncf_media_types(hello_image, tmp_path):
    write_layout(oci.to_wasm_artifact(hello_image.read_bytes()), tmp_path / "l")
    manifest = only_manifest(tmp_path / "l")
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.wasm.config.v0+json"
    assert [d["mediaType"] for d in manifest["layers"]] == ["application/wasm"]
    config = json.loads(blobs_of(tmp_path / "l")[manifest["config"]["digest"]])
    assert config["architecture"] == "wasm" and config["os"] == "wasip1"
    assert config["layerDigests"] == [sha256(hello_image.read_bytes())]


def test_oci_image_points_its_entrypoint_at_the_wasm_program(hello_image, tmp_path):
    artifact = oci.to_oci_image(imagefile.read(hello_image))
    again = oci.to_oci_image(imagefile.read(hello_image))
    assert artifact.manifest == again.manifest, "same image, same digests (deterministic gzip)"
    manifest = json.loads(artifact.manifest)
    assert {d["mediaType"] for d in manifest["layers"]} == {"application/vnd.oci.image.layer.v1.tar+gzip"}
    config = json.loads(artifact.blobs[manifest["config"]["digest"]])
    assert (config["os"], config["architecture"]) == ("wasip1", "wasm")
    assert config["config"]["Entrypoint"] == ["/usr/local/bin/python"]
    assert config["config"]["Cmd"] == ["main.py"] and config["config"]["WorkingDir"] == "/app"
    assert config["config"]["Env"][-3:] == ["GREETING=Hello", "HOME=/root", "PYTHONUSERBASE=/root/.local"]


@pytest.mark.skipif(not os.access(SKOPEO, os.X_OK) and not os.environ.get("CI"), reason="needs skopeo: make system")
@pytest.mark.parametrize("fmt", ["oci", "wasm"])
def test_skopeo_copies_an_exported_layout_and_boxer_imports_the_copy(boxer, hello_image, tmp_path, fmt):
    assert boxer("export", str(hello_image), "--format", fmt, str(tmp_path / "a")).returncode == 0
    r = subprocess.run([SKOPEO, "--insecure-policy", "copy", "-q", f"oci:{tmp_path / 'a'}:latest",
                        f"oci:{tmp_path / 'b'}:copy"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = boxer("import", str(tmp_path / "b"), "--ref", "copy", "-o", str(tmp_path / "back.wasm"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "back.wasm").read_bytes() == hello_image.read_bytes()


@pytest.mark.skipif(not os.access(SKOPEO, os.X_OK) and not os.environ.get("CI"), reason="needs skopeo: make system")
def test_save_is_an_oci_archive_and_a_docker_archive_for_skopeo_and_load_reads_skopeos(boxer, hello_image, tmp_path):
    """Issue 20: `boxer save` writes the archive `docker save` writes: skopeo reads it as
    oci-archive: (the image comes back byte for byte) and as docker-archive:; `boxer load`
    reads skopeo's docker-archive and oci-archive back into the store."""
    archive = tmp_path / "saved.tar"
    r = boxer("save", "-o", str(archive), str(hello_image))
    assert r.returncode == 0, r.stderr
    r = subprocess.run([SKOPEO, "--insecure-policy", "copy", "-q", f"oci-archive:{archive}", f"oci:{tmp_path / 'o'}:x"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert boxer("import", str(tmp_path / "o"), "-o", str(tmp_path / "back.wasm")).returncode == 0
    assert (tmp_path / "back.wasm").read_bytes() == hello_image.read_bytes()
    r = subprocess.run([SKOPEO, "--insecure-policy", "copy", "-q", f"docker-archive:{archive}",
                        f"docker-archive:{tmp_path / 'd.tar'}:sk/hello:1"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([SKOPEO, "--insecure-policy", "copy", "-q", f"oci:{tmp_path / 'o'}:x",
                        f"oci-archive:{tmp_path / 'oa.tar'}:sk/hello-oci:2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert boxer("load", "-i", str(tmp_path / "d.tar")).stdout == "Loaded image: sk/hello:1\n"
    assert boxer("load", "-i", str(tmp_path / "oa.tar")).stdout == "Loaded image: sk/hello-oci:2\n"
    [oci_loaded] = json.loads(boxer("inspect", "sk/hello-oci:2").stdout)
    assert oci_loaded["Id"] == imagefile.read(hello_image).id
    [docker_loaded] = json.loads(boxer("inspect", "sk/hello:1").stdout)
    # docker-archive has no place for boxer's annotations: the runnable form comes back, its
    # config (absolute program) and the workdir layer on top of the image's own
    assert docker_loaded["Config"]["Entrypoint"] == ["/usr/local/bin/python"]
    assert docker_loaded["RootFS"]["Layers"][:-1] == oci_loaded["RootFS"]["Layers"]


@pytest.mark.skipif(not os.access(SKOPEO, os.X_OK) and not os.environ.get("CI"), reason="needs skopeo: make system")
def test_a_saved_archive_copied_by_skopeo_runs_like_runwasi_in_its_workdir_and_load_gives_the_image_back(
        boxer, hello_image, wasmtime_cli, tmp_path):
    """Issue 21: `boxer save` writes each image as `boxer push` sends it, with the layer whose
    program starts in WORKDIR: a docker-archive copied by skopeo into an OCI layout, unpacked and
    run as runwasi runs it (only `/` preopened, no working directory set: tests/runwasi.py),
    prints what `boxer run` prints (hello-python opens main.py relative to WORKDIR /app); `boxer
    load` of the same archive drops that layer again, as pull does: the image saved, same id."""
    expected = boxer("run", str(hello_image))
    assert expected.returncode == 0, expected.stderr
    archive = tmp_path / "saved.tar"
    assert boxer("save", "-o", str(archive), str(hello_image)).returncode == 0
    r = subprocess.run([SKOPEO, "--insecure-policy", "copy", "-q", f"docker-archive:{archive}", f"oci:{tmp_path / 'o'}:x"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    config = runwasi.unpack_layout(tmp_path / "o", tmp_path / "rootfs")
    assert config["config"]["WorkingDir"] == "/app" and config["history"][-1]["created_by"].startswith("boxer push: ")
    (tmp_path / "elsewhere").mkdir()
    r = runwasi.run(wasmtime_cli, tmp_path / "rootfs", config, tmp_path / "elsewhere")
    assert (r.returncode, r.stdout.decode(), r.stderr.decode()) == (0, expected.stdout, expected.stderr)
    loaded = boxer("load", "-i", str(archive))
    assert loaded.returncode == 0, loaded.stderr
    [back] = json.loads(boxer("inspect", loaded.stdout.rsplit(" ", 1)[-1].strip()).stdout)
    assert back["Id"] == imagefile.read(hello_image).id


def test_save_writes_an_image_whose_cmd_needs_a_shell_as_it_is(boxer, build, tmp_path):
    """docker save refuses no image: one that `boxer push` refuses (its CMD needs a shell, which no
    runtime outside boxer has) is saved unchanged, and loads back the same."""
    image = build("FROM python:3.12\nCMD python -c 'print(1)' | tee log\n")
    archive = tmp_path / "shell.tar"
    r = boxer("save", "-o", str(archive), str(image))
    assert (r.returncode, r.stderr) == (0, "")
    loaded = boxer("load", "-i", str(archive))
    assert loaded.returncode == 0, loaded.stderr
    [back] = json.loads(boxer("inspect", loaded.stdout.rsplit(" ", 1)[-1].strip()).stdout)
    assert back["Id"] == imagefile.read(image).id


def test_import_refuses_a_tampered_blob(boxer, hello_image, tmp_path):
    assert boxer("export", str(hello_image), "--format", "oci", str(tmp_path / "l")).returncode == 0
    biggest = max((tmp_path / "l" / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)
    data = bytearray(biggest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    biggest.write_bytes(bytes(data))
    r = boxer("import", str(tmp_path / "l"), "-o", str(tmp_path / "out.wasm"))
    assert r.returncode == 1 and "digest check" in r.stderr and len(r.stderr.splitlines()) == 1
    assert not (tmp_path / "out.wasm").exists()


@pytest.mark.parametrize("name", ["../evil.wasm", "a/../../evil.wasm"])
def test_import_refuses_a_layer_that_escapes_its_root(boxer, tmp_path, name):
    write_oci_image(tmp_path / "l", [make_tar({"app.wasm": EXIT7, name: b"x"})])
    r = boxer("import", str(tmp_path / "l"), "-o", str(tmp_path / "out.wasm"))
    assert r.returncode == 1 and "outside the root" in r.stderr, r.stderr
    assert not (tmp_path / "out.wasm").exists()
    assert not (tmp_path / "evil.wasm").exists()


def test_import_runs_a_foreign_oci_image(boxer, tmp_path):
    write_oci_image(tmp_path / "l", [make_tar({"app.wasm": EXIT7})])
    assert boxer("import", str(tmp_path / "l"), "-o", str(tmp_path / "out.wasm")).returncode == 0
    assert boxer("run", str(tmp_path / "out.wasm")).returncode == 7


def test_import_refuses_a_linux_image(boxer, tmp_path):
    write_oci_image(tmp_path / "l", [make_tar({"bin/sh": b"\x7fELF"})], os_="linux", arch="amd64")
    r = boxer("import", str(tmp_path / "l"), "-o", str(tmp_path / "out.wasm"))
    assert r.returncode == 1 and "linux/amd64" in r.stderr and "WebAssembly" in r.stderr


def test_import_refuses_a_digest_that_is_a_path(boxer, hello_image, tmp_path):
    assert boxer("export", str(hello_image), "--format", "wasm", str(tmp_path / "l")).returncode == 0
    index = json.loads((tmp_path / "l" / "index.json").read_text())
    index["manifests"][0]["digest"] = "sha256:../../../../etc/passwd"
    (tmp_path / "l" / "index.json").write_text(json.dumps(index))
    r = boxer("import", str(tmp_path / "l"), "-o", str(tmp_path / "out.wasm"))
    assert r.returncode == 1 and "malformed digest" in r.stderr


def test_import_refuses_a_wasm_artifact_that_is_a_plain_module(boxer, tmp_path):
    write_layout(oci.Artifact(*_plain_module_artifact()), tmp_path / "l")
    r = boxer("import", str(tmp_path / "l"), "-o", str(tmp_path / "out.wasm"))
    assert r.returncode == 1 and "not a boxer image" in r.stderr and "FROM scratch" in r.stderr
    assert not (tmp_path / "out.wasm").exists()


def _plain_module_artifact():
    config = json.dumps({"architecture": "wasm", "os": "wasip1", "layerDigests": [sha256(EXIT7)]}).encode()
    cdesc = Descriptor(oci.WASM_CONFIG, sha256(config), len(config))
    layer = Descriptor(oci.WASM_LAYER, sha256(EXIT7), len(EXIT7))
    manifest = json.dumps({"schemaVersion": 2, "mediaType": oci.MANIFEST, "config": cdesc.to_json(),
                           "layers": [layer.to_json()]}).encode()
    return manifest, {cdesc.digest: config, layer.digest: EXIT7}, (cdesc, layer)


def test_export_refuses_a_non_empty_directory(boxer, hello_image, tmp_path):
    (tmp_path / "l").mkdir()
    (tmp_path / "l" / "keep").write_text("mine")
    r = boxer("export", str(hello_image), "--format", "oci", str(tmp_path / "l"))
    assert r.returncode == 1 and "not an empty directory" in r.stderr
    assert [p.name for p in (tmp_path / "l").iterdir()] == ["keep"]


def test_layer_cache_reuses_and_never_trusts_a_damaged_entry(tmp_path):
    from boxer_py.registry.transfer import LayerCache
    tar = make_tar({"app.wasm": EXIT7, "data.txt": b"x" * 100_000})
    cache = LayerCache(tmp_path / "layers")
    first = cache(tar)
    assert first == oci.gzip_layer(tar)
    entry = tmp_path / "layers" / (sha256(tar)[7:] + ".layer")
    whole = entry.read_bytes()
    assert whole.endswith(first)
    entry.write_bytes(oci.gzip_layer(make_tar({"evil.wasm": b"x"})))   # valid gzip, wrong content
    assert cache(tar) == first and entry.read_bytes() == whole
    entry.write_bytes(whole[:-100] + oci.gzip_layer(make_tar({"evil.wasm": b"x"}))[-100:])   # not what it records
    assert cache(tar) == first and entry.read_bytes() == whole
    entry.write_bytes(b"garbage")
    assert cache(tar) == first


def test_import_applies_whiteouts_as_deletions(boxer, tmp_path):
    write_oci_image(tmp_path / "l", [make_tar({"app.wasm": EXIT7, "etc/secret": b"s", "etc/kept": b"k"}),
                                     make_tar({"etc/.wh.secret": b"", "etc/.wh..": b""})])
    r = boxer("import", str(tmp_path / "l"), "-o", str(tmp_path / "out.wasm"))
    assert r.returncode == 0, r.stderr
    assert boxer("export", str(tmp_path / "out.wasm"), str(tmp_path / "x")).returncode == 0
    assert sorted(p.name for p in (tmp_path / "x" / "rootfs" / "etc").iterdir()) == ["kept"]


def test_a_layer_that_expands_past_the_limit_is_refused(tmp_path, monkeypatch):
    from boxer_py.errors import ImageError
    from boxer_py.registry.transfer import import_layout
    write_oci_image(tmp_path / "l", [make_tar({"app.wasm": EXIT7, "zeros": bytes(3 << 20)})])
    monkeypatch.setattr(oci, "MAX_LAYER", 1 << 20)
    with pytest.raises(ImageError, match="expands past 1 MiB"):
        import_layout(tmp_path / "l", tmp_path / "out.wasm")
    assert not (tmp_path / "out.wasm").exists()
