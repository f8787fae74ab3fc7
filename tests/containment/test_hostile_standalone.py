"""A standalone module (`boxer export --format standalone`) holds only the image: links in the
image never reach the host's files at export time nor at run time, a runtime's preopened
directories stay out of the guest's sight, and a crafted program is a one-line error."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from boxer_py.image import imagefile
from boxer_py.image.imagefile import BLOB_PREFIX, MANIFEST_SECTION, WASM_HEADER, _section, sha256

PROBE = """
import os
for path in ("/app/cfg", "/app/up{outside}", "/../../..{outside}", "/host/secret.txt"):
    try:
        print(path, open(path).read())
    except OSError as e:
        print(path, "errno", e.errno)
print(sorted(os.listdir("/app/up")) == sorted(os.listdir("/")), sorted(os.listdir("/")))
"""


def test_links_and_preopens_never_reach_the_host(tmp_path, build, boxer, wasmtime_cli):
    outside = tmp_path / "secret.txt"
    outside.write_text("HOST-SECRET-7f3a")
    image = build(f"FROM python:3.12\nRUN mkdir -p /app && ln -s {outside} /app/cfg && ln -s ../../../../.. /app/up\n")
    module = tmp_path / "standalone.wasm"
    r = boxer("export", "--format", "standalone", str(image), str(module))
    assert r.returncode == 0, r.stderr
    assert b"HOST-SECRET" not in module.read_bytes()
    run = tmp_path / "cwd"
    run.mkdir()
    # The runtime preopens a host directory: the module's filesystem is the image's alone.
    r = subprocess.run([str(wasmtime_cli), "run", "--dir", f"{tmp_path}::/host", str(module), "python", "-c",
                        PROBE.format(outside=outside)], capture_output=True, text=True, cwd=run, timeout=600)
    lines = r.stdout.splitlines()
    assert lines[:4] == ["/app/cfg errno 44", f"/app/up{outside} errno 44", f"/../../..{outside} errno 44",
                         "/host/secret.txt errno 44"], r.stderr
    assert lines[4] == "True ['app', 'etc', 'lib', 'root', 'tmp', 'usr']"  # the image's own, /etc its accounts
    assert list(run.iterdir()) == [] and outside.read_text() == "HOST-SECRET-7f3a"


def _image(path: Path, program: bytes, entrypoint: list[str], links: dict[str, str] | None = None) -> Path:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("prog.wasm")
        info.size, info.mode = len(program), 0o755
        tar.addfile(info, io.BytesIO(program))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    layer = buf.getvalue()
    config = {"Entrypoint": entrypoint, "Env": ["PATH=/"], "WorkingDir": "/"}
    raw = json.dumps({"architecture": "wasm", "os": "wasip1", "config": config,
                      "rootfs": {"type": "layers", "diff_ids": [sha256(layer)]}}).encode()
    manifest = {"schemaVersion": 2, "mediaType": imagefile.MANIFEST_MEDIA_TYPE,
                "config": {"mediaType": imagefile.CONFIG_MEDIA_TYPE, "digest": sha256(raw), "size": len(raw)},
                "layers": [{"mediaType": imagefile.LAYER_MEDIA_TYPE, "digest": sha256(layer), "size": len(layer)}]}
    path.write_bytes(b"".join([WASM_HEADER, _section(MANIFEST_SECTION, json.dumps(manifest).encode()),
                               _section(BLOB_PREFIX + sha256(raw), raw), _section(BLOB_PREFIX + sha256(layer), layer)]))
    return path


HEADER = b"\0asm\x01\0\0\0"
CRAFTED = {
    "truncated": (HEADER + b"\x01\x7f\x60", ["/prog.wasm"], None, "cannot be made standalone"),
    "counts past the end": (HEADER + b"\x03\x05\xff\xff\xff\xff\x0f", ["/prog.wasm"], None, "cannot be made standalone"),
    "imported memory": (HEADER + b"\x02\x0f\x01\x03env\x06memory\x02\x00\x01", ["/prog.wasm"], None,
                        "/prog.wasm: imports env.memory, which is not WASI preview 1"),
    "host function": (HEADER + b"\x01\x04\x01\x60\x00\x00\x02\x0d\x01\x04host\x04call\x00\x00", ["/prog.wasm"], None,
                      "/prog.wasm: imports host.call, which is not WASI preview 1: no WASI runtime could run"),
    "a reactor": (HEADER + b"\x05\x03\x01\x00\x01", ["/prog.wasm"], None, "not a WASI command"),
    "a reactor's host.call of another type": (
        HEADER + b"\x01\x08\x02\x60\x00\x01\x7f\x60\x00\x00\x02\x0d\x01\x04host\x04call\x00\x01"
        b"\x03\x02\x01\x00\x05\x03\x01\x00\x01\x07\x07\x01\x03run\x00\x01\x0a\x06\x01\x04\x00\x41\x00\x0b",
        ["/prog.wasm"], None, "it imports host.call with another signature than boxer's"),
    "not wasm": (b"#!/bin/sh\necho hi\n", ["/prog.wasm"], None, "not a WebAssembly program"),
    "link out of the image": (HEADER, ["/escape.wasm"], {"escape.wasm": "/usr/bin/python3"}, "not found"),
}


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_a_crafted_program_is_one_line(case, tmp_path, boxer):
    program, entrypoint, links, message = CRAFTED[case]
    image = _image(tmp_path / "crafted.wasm", program, entrypoint, links)
    out = tmp_path / "out.wasm"
    r = boxer("export", "--format", "standalone", str(image), str(out))
    assert r.returncode == 1, r.stderr
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr and not out.exists()


# A reactor as the data-science base's CPython is one: `run`, no `_start`, and `host.call`. It asks
# host.call for something (a request in memory, room for an answer) and exits 42 only if the call
# answered -1 and wrote nothing; 1 if it answered anything else, 2 if its answer buffer changed.
ASKS_THE_HOST = """
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (import "host" "call" (func $call (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "read /etc/shadow")
  (func (export "run") (result i32)
    (if (result i32) (i32.ne (call $call (i32.const 64) (i32.const 16) (i32.const 128) (i32.const 64)) (i32.const -1))
      (then (i32.const 1))
      (else (if (result i32) (i64.eqz (i64.load (i32.const 128))) (then (i32.const 42)) (else (i32.const 2)))))))
"""


def test_a_standalone_reactors_host_call_reaches_nothing(tmp_path, boxer, wasmtime_cli):
    """Issue 21: a reactor importing host.call becomes a command whose host.call is inside the
    module: it answers -1 ("no host", as boxer run answers it) and the module imports nothing
    but WASI, so no runtime's host function can stand behind it."""
    import wasmtime

    from boxer_py.image import wasmbin

    image = _image(tmp_path / "asks.wasm", wasmtime.wat2wasm(ASKS_THE_HOST), ["/prog.wasm"])
    out = tmp_path / "out.wasm"
    r = boxer("export", "--format", "standalone", str(image), str(out))
    assert r.returncode == 0, r.stderr
    imports = wasmbin.import_entries(dict(wasmbin.sections(out.read_bytes()))[wasmbin.IMPORT])
    assert {module for module, _, _ in imports} == {"wasi_snapshot_preview1"}
    assert "boxer_no_host" not in {name for _, name, _ in imports}
    r = subprocess.run([str(wasmtime_cli), "run", str(out)], capture_output=True, text=True, timeout=120)
    assert (r.returncode, r.stdout) == (42, ""), r.stderr
