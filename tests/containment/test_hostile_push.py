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
