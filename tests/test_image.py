"""The image file and the module cache: digest-checked, never trusted when damaged."""
from __future__ import annotations

import hashlib
import os

import pytest
import wasmtime

import boxer_py
from boxer_py.runtime.modcache import ModuleCache, new_engine

# A tiny WASI command: exits with the code 7, so a cached module can be run cheaply.
EXIT7 = wasmtime.wat2wasm("""
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $exit (i32.const 7))))
""")


def test_image_is_a_valid_wasm_module(hello_image):
    wasmtime.Module.validate(wasmtime.Engine(), hello_image.read_bytes())


def test_image_reads_back_with_verified_blobs(hello_image):
    img = boxer_py.read_image(hello_image)
    assert img.id == "sha256:" + hashlib.sha256(img.manifest).hexdigest()
    for d in img.layers:
        assert "sha256:" + hashlib.sha256(img.layer(d)).hexdigest() == d.digest


@pytest.mark.parametrize("where", [0.3, 0.6, 0.95])
def test_flipped_byte_is_detected(boxer, hello_image, tmp_path, where):
    data = bytearray(hello_image.read_bytes())
    data[int(len(data) * where)] ^= 0x01
    bad = tmp_path / "bad.wasm"
    bad.write_bytes(bytes(data))
    r = boxer("run", str(bad))
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr.startswith("boxer: ") and len(r.stderr.strip().splitlines()) == 1
    assert "tampered" in r.stderr or "corrupt" in r.stderr


@pytest.mark.parametrize("keep", [4, 100, 0.5, -1])
def test_truncated_image_is_detected(boxer, hello_image, tmp_path, keep):
    data = hello_image.read_bytes()
    cut = data[: int(len(data) * keep) if isinstance(keep, float) else keep]
    bad = tmp_path / "cut.wasm"
    bad.write_bytes(cut)
    r = boxer("inspect", str(bad))
    assert r.returncode == 1 and r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_appended_junk_is_detected(boxer, hello_image, tmp_path):
    bad = tmp_path / "junk.wasm"
    bad.write_bytes(hello_image.read_bytes() + b"\0\x05\x04evil")
    r = boxer("run", str(bad))
    assert r.returncode == 1 and "unexpected section" in r.stderr


def test_plain_wasm_module_and_non_wasm_files_are_refused(boxer, tmp_path):
    plain = tmp_path / "plain.wasm"
    plain.write_bytes(EXIT7)
    r = boxer("run", str(plain))
    assert r.returncode == 1 and "not a boxer image" in r.stderr and "FROM scratch" in r.stderr
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    r = boxer("run", str(text))
    assert r.returncode == 1 and "not a WebAssembly file" in r.stderr
    r = boxer("run", str(tmp_path / "missing.wasm"))
    assert r.returncode == 125 and "no such image file" in r.stderr  # as docker run


def test_export_writes_rootfs_and_config(boxer, hello_image, tmp_path):
    out = tmp_path / "out"
    r = boxer("export", str(hello_image), str(out))
    assert r.returncode == 0, r.stderr
    assert (out / "rootfs/app/main.py").read_text().startswith("import os")
    assert os.readlink(out / "rootfs/usr/local/bin/python") == "python3.12"
    assert b'"WorkingDir": "/app"' in (out / "config.json").read_bytes()
    r = boxer("export", str(hello_image), str(out))
    assert r.returncode == 1 and "not an empty directory" in r.stderr


def _run_module(engine, module) -> int:
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    store = wasmtime.Store(engine)
    store.set_wasi(wasmtime.WasiConfig())
    store.set_epoch_deadline(1)
    try:
        linker.instantiate(store, module).exports(store)["_start"](store)
    except wasmtime.ExitTrap as e:
        return e.code
    return 0


def test_module_cache_compiles_once(tmp_path):
    engine = new_engine()
    first = ModuleCache(engine, tmp_path).load(EXIT7)
    [entry] = tmp_path.glob("*.cwasm")
    stamp = (entry.stat().st_ino, entry.stat().st_mtime_ns)
    second = ModuleCache(engine, tmp_path).load(EXIT7)
    assert (entry.stat().st_ino, entry.stat().st_mtime_ns) == stamp  # reused, not rewritten
    assert first.digest == second.digest
    assert _run_module(engine, second.module) == 7


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "garbage-meta", "missing-meta"])
def test_module_cache_survives_corruption(tmp_path, damage):
    engine = new_engine()
    ModuleCache(engine, tmp_path).load(EXIT7)
    [entry] = tmp_path.glob("*.cwasm")
    meta = entry.with_suffix(".json")
    data = entry.read_bytes()
    if damage == "truncate":
        entry.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        entry.write_bytes(data[:-200] + bytes([data[-200] ^ 0xFF]) + data[-199:])
    elif damage == "empty":
        entry.write_bytes(b"")
    elif damage == "garbage-meta":
        meta.write_text("{not json")
    else:
        meta.unlink()
    loaded = ModuleCache(engine, tmp_path).load(EXIT7)
    assert _run_module(engine, loaded.module) == 7
    assert entry.read_bytes() == data  # the entry was rebuilt


def test_run_uses_the_cache_between_processes(boxer, hello_image, cache_dir):
    boxer("run", str(hello_image))
    entries = {p: p.stat().st_mtime_ns for p in (cache_dir / "modules").glob("*.cwasm")}
    assert entries
    r = boxer("run", str(hello_image))
    assert r.returncode == 0
    assert {p: p.stat().st_mtime_ns for p in (cache_dir / "modules").glob("*.cwasm")} == entries


def test_image_changed_in_place_after_a_good_run_is_checked_again(boxer, hello_image, tmp_path):
    img = tmp_path / "img.wasm"
    img.write_bytes(hello_image.read_bytes())
    assert boxer("run", str(img)).returncode == 0
    st = img.stat()
    data = bytearray(img.read_bytes())
    data[len(data) // 2] ^= 0x40
    img.write_bytes(bytes(data))
    os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size and mtime: only ctime tells
    r = boxer("run", str(img))
    assert r.returncode == 1 and "fails its digest check" in r.stderr
